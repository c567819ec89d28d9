"""schemathesis against the public OpenAPI document, served through the gateway, with a real
key: no 5xx and every answer conforms to the document's response schemas."""

from __future__ import annotations

from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error, response_schema_conformance

from gateway.stack import Stack
from tests.security.conftest import BASE, assert_sparkpost_error
from tests.stackfix import Tenant

EXAMPLES_PER_OPERATION = 15
CHECKS = [not_a_server_error, response_schema_conformance]
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


def fuzz(operation: Any, mode: Any, base_url: str, headers: dict[str, str],
         failures: list[str]) -> None:
    """Examples of one operation; failures are recorded, not raised, so Hypothesis neither
    stops at the first nor spends the time budget shrinking it."""

    @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, headers=headers, timeout=30)
        except Exception as exc:  # a transport error: the connection broke mid-answer
            failures.append(f"{case.method} {case.formatted_path} {case.query}: {exc!r}")
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            titles = sorted({getattr(e, "title", type(e).__name__)
                             for e in getattr(exc, "exceptions", [exc])})
            failures.append(f"{case.method} {case.formatted_path} {case.query} "
                            f"body={str(case.body)[:80]!r} -> {response.status_code} "
                            f"{response.text[:200]!r}: {', '.join(titles)}")

    run()


@pytest.fixture(autouse=True)
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Hypothesis keeps its example database and constants cache out of the work tree."""
    set_hypothesis_home_dir(str(tmp_path_factory.mktemp("hypothesis")))


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_the_public_api_fuzzed_from_its_openapi_document_has_no_5xx_and_no_schema_violation(
        stack: Stack, tenant: Tenant, mode: Any) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.gateway_url}{BASE}/openapi.json")
    headers = {"Authorization": tenant.key}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        fuzz(operation, mode, stack.gateway_url, headers, failures)
    assert operations >= 12
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:15])


# What the fuzzer found, kept as fixed cases: each was a 500 (or a stream cut short).
FOUND = [
    ("GET", f"{BASE}/imports/99999999999999999999", 404),
    ("DELETE", f"{BASE}/imports/99999999999999999999", 404),
    ("GET", f"{BASE}/imports/99999999999999999999/rejects", 404),
    ("GET", f"{BASE}?description=a%00b", 400),
    ("GET", f"{BASE}?domain=a%00b", 400),
    ("GET", f"{BASE}/export?description=a%00b", 400),
    ("GET", f"{BASE}/export?domain=example.com%00", 400),
]


@pytest.mark.parametrize("call", FOUND, ids=[f"{m} {p}" for m, p, _ in FOUND])
def test_inputs_the_fuzzer_found_are_a_json_4xx(stack: Stack, tenant: Tenant,
                                               call: tuple[str, str, int]) -> None:
    method, path, status = call
    resp = httpx.request(method, stack.gateway_url + path, headers={"Authorization": tenant.key})
    assert_sparkpost_error(resp, status)
