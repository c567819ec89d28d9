"""The CSV shortcut for plain rows gives exactly what the general rules give."""

from __future__ import annotations

import itertools

from services.suppression.entries import BadEntry
from services.suppression.imports import CsvLayout, csv_row

HEADERS = [
    ["recipient", "type", "description", "list_id"],
    ["email", "transactional", "non_transactional", "description"],
    ["recipient", "email", "type", "transactional", "non_transactional"],
    ["recipient"],
]
CELLS = {
    "recipient": ["a@example.com", "A.b+c@example.com", "x@EXAMPLE.com", " pad@example.com",
                  "bad", "", "\ufffd@example.com", "a@b..c", "x" * 65 + "@example.com"],
    "email": ["e@example.com", ""],
    "type": ["transactional", "non_transactional", "", "marketing", "Transactional"],
    "transactional": ["true", "false", "1", "", "YES", "maybe"],
    "non_transactional": ["true", "0", "", "t"],
    "description": ["", "plain", "x" * 1025],
    "list_id": ["", "news", "bad id"],
}


def general(header: list[str], fields: list[str]) -> object:
    try:
        return csv_row(header, fields, 7)
    except BadEntry as exc:
        return f"rejected: {exc}"


def test_the_shortcut_agrees_with_the_general_rules_on_every_combination() -> None:
    checked = 0
    for header in HEADERS:
        layout = CsvLayout(header)
        for fields in itertools.product(*(CELLS[name] for name in header)):
            row = list(fields)
            fast = layout.plain_row(row, 7)
            if fast is not None:
                assert fast == general(header, row), (header, row)
                checked += 1
        assert layout.plain_row(["a@example.com"] * (len(header) + 1), 7) is None
    assert checked > 100  # the shortcut took a good share of them
