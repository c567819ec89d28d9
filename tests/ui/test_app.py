"""The web UI at /app/ in Debian's Chromium, against the whole stack through the gateway."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from playwright.sync_api import Page, expect

from gateway.stack import Stack
from tests.stackfix import Tenant, unique
from tests.ui.conftest import NARROW, app_url, save_shot, sign_in

BASE = "/api/v1/suppression-list"
DASH = "\N{EN DASH}"  # in "showing 1-50"


class Api:
    """The public API through the gateway, to seed and check what the UI did."""

    def __init__(self, stack: Stack, key: str) -> None:
        self.client = httpx.Client(base_url=stack.gateway_url, timeout=60,
                                   headers={"Authorization": key})

    def bulk(self, entries: list[dict[str, Any]]) -> None:
        resp = self.client.put(BASE, json={"recipients": entries})
        assert resp.status_code == 200, resp.text

    def entries(self, recipient: str) -> list[dict[str, Any]]:
        resp = self.client.get(f"{BASE}/{quote(recipient, safe='@')}")
        if resp.status_code == 404:
            return []
        assert resp.status_code == 200, resp.text
        return list(resp.json()["results"])


def domain() -> str:
    return unique("ui").lower() + ".example"


def results(page: Page) -> Any:
    return page.locator("#results tbody tr")


def form(page: Page) -> Any:
    return page.locator("#search-form")


def search(page: Page) -> None:
    """Search with the form as it is, and wait for the answer to be shown."""
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#search")).to_have_attribute("aria-busy", "false")


def search_for(page: Page, text: str) -> None:
    form(page).get_by_label("Recipient or domain").fill(text)
    search(page)


def test_the_page_and_its_files_are_public_and_the_api_is_not(stack: Stack) -> None:
    for path in ("/app/", "/app/app.js", "/app/style.css"):
        resp = httpx.get(stack.gateway_url + path)
        assert resp.status_code == 200, path
    assert httpx.get(stack.gateway_url + "/app", follow_redirects=True).url.path == "/app/"
    assert httpx.get(stack.gateway_url + BASE).status_code == 401


def test_signing_in_keeps_the_key_for_the_tab_and_signing_out_clears_it(
        page: Page, stack: Stack, tenant: Tenant) -> None:
    page.goto(app_url(stack))
    expect(page.get_by_label("API key")).to_be_focused()
    save_shot(page, "01-sign-in")
    sign_in(page, stack, tenant.key)
    expect(page.locator("#summary [data-source=total] dd")).to_have_text("0")
    expect(page.locator("#key-kind")).to_have_text("Manage · primary account key")
    assert page.evaluate("sessionStorage.getItem('portcullis.key')") == tenant.key
    page.reload()  # the key outlives a reload of the tab
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_wrong_key_is_told_it_was_not_accepted(page: Page, stack: Stack) -> None:
    page.goto(app_url(stack))
    page.get_by_label("API key").fill("not-a-real-key")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("That API key was not accepted")
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    save_shot(page, "02-wrong-key")


def test_add_search_edit_and_delete_an_entry(page: Page, stack: Stack, tenant: Tenant) -> None:
    api = Api(stack, tenant.key)
    where = domain()
    jane = f"jane@{where}"
    sign_in(page, stack, tenant.key)

    page.get_by_role("button", name="Add entry").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Recipient")).to_be_focused()
    dialog.get_by_label("Recipient").fill(jane)
    dialog.get_by_label("Type").select_option("transactional")
    dialog.get_by_label("Description").fill("asked by phone")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_have_text(f"Added {jane}.")
    [stored] = api.entries(jane)
    assert (stored["type"], stored["description"], stored["source"]) == (
        "transactional", "asked by phone", "Manually Added")

    search_for(page, where)
    expect(results(page)).to_have_count(1)
    expect(page.locator("#result-count")).to_have_text(f"1 entry matches; showing 1{DASH}1.")
    expect(page.locator("#summary [data-source=manually_added] dd")).to_have_text("1")

    # Edit: description and list; the list is part of the key, so the entry moves.
    page.get_by_role("button", name=f"Open {jane}").click()
    expect(dialog.get_by_label("Recipient")).to_have_value(jane)
    expect(dialog.get_by_label("Description")).to_be_focused()
    dialog.get_by_label("Description").fill("asked again, by mail")
    dialog.get_by_label("List id").fill("weekly-news")
    save_shot(page, "03-edit-entry")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(results(page)).to_have_count(1)
    expect(results(page).first).to_contain_text("asked again, by mail")
    expect(results(page).first).to_contain_text("weekly-news")
    [stored] = api.entries(jane)
    assert (stored["description"], stored.get("list_id")) == ("asked again, by mail",
                                                              "weekly-news")

    # Delete asks first; Cancel keeps the entry, Delete removes it.
    page.get_by_role("button", name=f"Open {jane}").click()
    dialog.get_by_role("button", name="Delete…").click()
    confirm = page.get_by_role("dialog", name="Delete this entry?")
    expect(confirm).to_contain_text("cannot be undone")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    save_shot(page, "04-delete-confirmation")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    assert len(api.entries(jane)) == 1
    dialog.get_by_role("button", name="Delete…").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text(f"Deleted {jane} (transactional).")
    expect(page.locator("#result-count")).to_have_text("No entries match.")
    assert api.entries(jane) == []


def test_search_filters_sort_and_cursor_pages(page: Page, stack: Stack, tenant: Tenant) -> None:
    api = Api(stack, tenant.key)
    where, other = domain(), domain()
    api.bulk([{"recipient": f"r{i:02d}@{where}", "type": "non_transactional",
               "description": f"batch {i % 2}"} for i in range(60)])
    api.bulk([{"recipient": f"t{i}@{where}", "type": "transactional", "list_id": "alerts",
               "description": "alert list"} for i in range(3)])
    api.bulk([{"recipient": f"x@{other}", "type": "transactional"}])
    sign_in(page, stack, tenant.key)
    expect(page.locator("#result-count")).to_contain_text("64 entries match")

    search_for(page, where)
    form(page).get_by_label("Per page").select_option("25")
    search(page)
    expect(page.locator("#result-count")).to_have_text(f"63 entries match; showing 1{DASH}25.")
    seen: list[str] = []
    for shown in (f"26{DASH}50", f"51{DASH}63"):
        seen += results(page).locator("td[data-label=Recipient]").all_inner_texts()
        page.get_by_role("button", name="Next page").click()
        expect(page.locator("#result-count")).to_have_text(f"63 entries match; showing {shown}.")
    seen += results(page).locator("td[data-label=Recipient]").all_inner_texts()
    assert len(seen) == len(set(seen)) == 63
    expect(page.get_by_role("button", name="Next page")).to_be_hidden()
    page.get_by_role("button", name="Previous page").click()
    expect(page.locator("#result-count")).to_have_text(f"63 entries match; showing 26{DASH}50.")

    form(page).get_by_role("checkbox", name="Transactional", exact=True).check()
    form(page).get_by_label("List id").fill("alerts")
    search(page)
    expect(page.locator("#result-count")).to_have_text(f"3 entries match; showing 1{DASH}3.")

    page.get_by_role("button", name="Clear filters").click()
    search_for(page, where)
    form(page).get_by_label("Description", exact=True).fill("batch 1")
    form(page).get_by_label("Exact match").check()
    form(page).get_by_label("Order").select_option("asc")
    search(page)
    expect(page.locator("#result-count")).to_contain_text("30 entries match")

    # One recipient: every entry it has; a date range in the future finds nothing.
    search_for(page, f"t1@{where}")
    expect(results(page)).to_have_count(1)
    page.get_by_role("button", name="Clear filters").click()
    form(page).get_by_label("Updated from").fill("2000-01-01T00:00:00")
    form(page).get_by_label("Updated to").fill("2001-01-01T00:00:00")
    search(page)
    expect(page.locator("#result-count")).to_have_text("No entries match.")
    form(page).get_by_label("Updated to").fill("")
    search(page)
    expect(page.locator("#result-count")).to_contain_text("64 entries match")
    form(page).get_by_role("checkbox", name="Compliance").check()
    search(page)
    expect(page.locator("#result-count")).to_have_text("No entries match.")


def insert_compliance(stack: Stack, account_id: int, recipient: str) -> None:
    """Straight into PostgreSQL: the API never sets the Compliance source. In a thread of
    its own, because Playwright's sync API keeps an event loop running in this one."""
    async def insert() -> None:
        conn = await asyncpg.connect(stack.dsn)
        try:
            await conn.execute(
                "INSERT INTO suppression.entries (account_id, recipient, type, domain, source,"
                " description) VALUES ($1, $2, 'non_transactional', $3, 'Compliance', $4)",
                account_id, recipient, recipient.split("@")[1], "legal hold")
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, insert()).result()


def test_a_compliance_entry_cannot_be_deleted_and_the_page_says_why(
        page: Page, stack: Stack, tenant: Tenant) -> None:
    where = domain()
    held = f"held@{where}"
    insert_compliance(stack, tenant.account_id, held)
    sign_in(page, stack, tenant.key)
    search_for(page, where)
    expect(results(page)).to_have_count(1)
    expect(page.locator("#summary [data-source=compliance] dd")).to_have_text("1")
    page.get_by_role("button", name=f"Open {held}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Delete…")).to_be_disabled()
    expect(dialog.get_by_role("button", name="Save")).to_be_disabled()
    expect(dialog.get_by_role("button", name="Delete…")).to_have_accessible_description(
        re.compile("source is Compliance.*cannot be deleted"))
    save_shot(page, "05-compliance-entry")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # The API refuses too, whatever the page allows.
    resp = httpx.request("DELETE", f"{stack.gateway_url}{BASE}/{held}",
                         headers={"Authorization": tenant.key})
    assert resp.status_code == 403


def test_a_view_only_key_sees_entries_but_cannot_change_them(
        page: Page, stack: Stack, tenant: Tenant) -> None:
    where = domain()
    Api(stack, tenant.key).bulk([{"recipient": f"v@{where}", "type": "transactional"}])
    viewer = tenant.new_key(["suppression_lists/view"])
    sign_in(page, stack, viewer)
    expect(page.locator("#key-kind")).to_have_text("View only · primary account key")
    expect(page.get_by_role("button", name="Add entry")).to_be_disabled()
    expect(page.get_by_role("button", name="Upload")).to_be_disabled()
    expect(page.get_by_label("CSV file")).to_be_disabled()
    search_for(page, where)
    page.get_by_role("button", name=f"Open v@{where}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Description")).to_be_disabled()
    expect(dialog.get_by_label("Type")).to_be_disabled()
    expect(dialog.get_by_role("button", name="Save")).to_be_disabled()
    expect(dialog.get_by_role("button", name="Delete…")).to_be_disabled()
    expect(dialog).to_contain_text("can view entries but not change them")
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    save_shot(page, "06-view-only-key")


def make_csv(where: str, rows: int, bad: int = 0) -> tuple[bytes, set[tuple[str, str, str]]]:
    out = io.StringIO()
    out.write("recipient,type,description\n")
    good: set[tuple[str, str, str]] = set()
    for i in range(rows - bad):
        kind = "transactional" if i % 2 else "non_transactional"
        out.write(f"u{i}@{where},{kind},row {i}\n")
        good.add((f"u{i}@{where}", kind, f"row {i}"))
    for i in range(bad):
        out.write(f"no-at-sign-{i},transactional,bad\n")
    return out.getvalue().encode(), good


def test_upload_10000_rows_then_download_them_with_filters(
        page: Page, stack: Stack, tenant: Tenant, tmp_path: Path) -> None:
    where = domain()
    body, good = make_csv(where, 10_000, bad=2)
    path = tmp_path / "list.csv"
    path.write_bytes(body)
    sign_in(page, stack, tenant.key)
    page.get_by_label("CSV file").set_input_files(path)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#import-state")).to_have_text("Done", timeout=60_000)
    expect(page.locator("#import-progress")).to_have_js_property("value", 1)
    expect(page.locator("#import-summary dd[data-name=rows_read]")).to_have_text("10,000")
    expect(page.locator("#import-summary dd[data-name=rows_written]")).to_have_text("9,998")
    expect(page.locator("#import-summary dd[data-name=rows_rejected]")).to_have_text("2")
    expect(page.locator("#summary [data-source=total] dd")).to_have_text("9,998")
    save_shot(page, "07-import-done")

    with page.expect_download() as info:
        page.get_by_role("button", name="Download rejected rows (CSV)").click()
    rejects = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert [r["line"] for r in rejects] == ["10000", "10001"]

    search_for(page, where)
    form(page).get_by_role("checkbox", name="Transactional", exact=True).check()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    assert info.value.suggested_filename == "suppression-list.csv"
    expect(page.get_by_role("status")).to_contain_text("Downloaded suppression-list.csv")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    got = {(r["recipient"], r["type"], r["description"]) for r in rows}
    assert len(rows) == len(got) == 4_999
    assert got == {g for g in good if g[1] == "transactional"}
    assert {r["source"] for r in rows} == {"Manually Added"}


# Big enough that the worker commits several batches (50,000 rows each) while the page
# polls, so the bar shows values between empty and full.
BIG_IMPORT_ROWS = 150_000


def test_the_progress_bar_follows_the_import_job(
        page: Page, stack: Stack, tenant: Tenant, tmp_path: Path) -> None:
    where = domain()
    body, _ = make_csv(where, BIG_IMPORT_ROWS)
    path = tmp_path / "big.csv"
    path.write_bytes(body)
    sign_in(page, stack, tenant.key)
    page.evaluate("""() => {
        window.seen = [];
        const bar = document.getElementById('import-progress');
        new MutationObserver(() => window.seen.push([bar.dataset.phase, bar.value]))
            .observe(bar, {attributes: true, attributeFilter: ['value']});
    }""")
    page.get_by_label("CSV file").set_input_files(path)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_function("""() => {
        const bar = document.getElementById('import-progress');
        return bar.dataset.phase === 'import' && bar.value > 0 && bar.value < 1;
    }""", timeout=120_000)
    expect(page.locator("#import-state")).to_contain_text("Importing: ")
    save_shot(page, "11-import-in-progress")
    expect(page.locator("#import-state")).to_have_text("Done", timeout=120_000)
    seen: list[tuple[str, float]] = [tuple(s) for s in page.evaluate("window.seen")]
    during = sorted({v for phase, v in seen if phase == "import" and 0 < v < 1})
    assert during, f"the bar never showed the job part-way: {seen}"
    job = [v for phase, v in seen if phase == "import"]
    assert job == sorted(job) and job[-1] == 1, job
    expect(page.locator("#summary [data-source=total] dd")).to_have_text(
        f"{BIG_IMPORT_ROWS:,}")


@pytest.mark.parametrize("page", [NARROW], indirect=True)
def test_the_page_works_on_a_375px_screen(page: Page, stack: Stack, tenant: Tenant) -> None:
    where = domain()
    Api(stack, tenant.key).bulk([{"recipient": f"n{i}@{where}", "type": "transactional",
                                  "description": "narrow"} for i in range(3)])
    sign_in(page, stack, tenant.key)
    search_for(page, where)
    expect(results(page)).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for cell in results(page).first.locator("td").all():
        box = cell.bounding_box()
        assert box is not None, cell.evaluate("e => e.outerHTML")
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    save_shot(page, "08-narrow-375px")
    page.get_by_role("button", name=f"Open n0@{where}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Save")).to_be_in_viewport()
    save_shot(page, "09-narrow-375px-entry")


FOCUSED = "(e => e.id || `${e.name}:${e.value}`)(document.activeElement)"


def test_the_keyboard_alone_signs_in_and_searches(page: Page, stack: Stack,
                                                  tenant: Tenant) -> None:
    where = domain()
    Api(stack, tenant.key).bulk([{"recipient": f"k@{where}", "type": "transactional"}])
    page.goto(app_url(stack))
    page.keyboard.type(tenant.key)  # the key field has the focus
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator("#main")).to_be_focused()
    expect(page.locator("#search")).to_have_attribute("aria-busy", "false")
    order = []
    for _ in range(6):
        page.keyboard.press("Tab")
        order.append(page.evaluate(FOCUSED))
    assert order == ["f-q", "types:transactional", "types:non_transactional",
                     "sources:Spam Complaint", "sources:List Unsubscribe",
                     "sources:Bounce Rule"], order
    page.keyboard.press("Shift+Tab")
    page.locator("#f-q").focus()
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUSED) == "sign-out"
    page.keyboard.press("Tab")
    page.keyboard.type(where)
    page.keyboard.press("Enter")
    # The search the Enter started is the one shown (the table from signing in may already
    # hold this one entry)
    expect(page.locator("#search")).to_have_attribute("aria-busy", "false")
    expect(results(page)).to_have_count(1)
    results(page).get_by_role("button", name=f"Open k@{where}").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(results(page).get_by_role("button", name=f"Open k@{where}")).to_be_focused()


def test_a_primary_key_chooses_a_subaccount(page: Page, stack: Stack, tenant: Tenant) -> None:
    where = domain()
    sub = tenant.subaccount()
    Api(stack, tenant.key).bulk([{"recipient": f"p@{where}", "type": "transactional"}])
    Api(stack, tenant.new_key(["suppression_lists/manage"], sub)).bulk(
        [{"recipient": f"s@{where}", "type": "transactional"}])
    sign_in(page, stack, tenant.key)
    search_for(page, where)
    expect(results(page)).to_have_count(2)
    page.get_by_label("Account", exact=True).select_option("0")
    expect(page.get_by_role("status")).to_have_text("Showing the primary account only.")
    expect(results(page)).to_have_count(1)
    expect(results(page).first).to_contain_text(f"p@{where}")
    page.get_by_label("Account", exact=True).select_option("sub")
    page.get_by_label("Subaccount id").fill(str(sub))
    page.get_by_role("button", name="Use").click()
    expect(page.get_by_role("status")).to_have_text(f"Showing subaccount {sub}.")
    expect(results(page)).to_have_count(1)
    expect(results(page).first).to_contain_text(f"s@{where}")
    # A subaccount's own key has no choice to make.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, stack, tenant.new_key(["suppression_lists/view"], sub))
    expect(page.locator("#key-kind")).to_have_text("View only · subaccount key")
    expect(page.get_by_label("Account", exact=True)).to_be_hidden()


def test_a_rate_limited_key_is_told_when_to_retry(page: Page, stack: Stack) -> None:
    # One request a minute: signing in (a few calls) runs into the limit.
    account = stack.admin("POST", "/admin/accounts", {
        "name": unique("slow"),
        "rate_limits": [{"dimension": "account", "limit": 1, "window": 60, "burst": 0}],
    })["id"]
    key = stack.create_key(account, ["suppression_lists/manage"])["key"]
    page.goto(app_url(stack))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"Too many requests\. Try again in \d+ seconds?\."))
    save_shot(page, "10-rate-limited")


def test_a_lost_network_is_said_and_the_page_stays(page: Page, stack: Stack,
                                                    tenant: Tenant) -> None:
    sign_in(page, stack, tenant.key)
    page.context.set_offline(True)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(
        "Could not reach the server. Check your connection and try again.")
    expect(page.get_by_role("button", name="Search", exact=True)).to_be_visible()
    page.context.set_offline(False)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("alert")).to_be_hidden()


@pytest.mark.parametrize(("status", "headers", "body", "expected"), [
    (401, {}, {"errors": [{"message": "Unauthorized", "description": "Key revoked"}]},
     "Your API key was not accepted: it may be mistyped, expired or revoked. "
     "Sign out and sign in with a valid key. (The server said: Unauthorized: Key revoked.)"),
    (401, {}, None,
     "Your API key was not accepted: it may be mistyped, expired or revoked. "
     "Sign out and sign in with a valid key."),
    (403, {}, {"errors": [{"message": "Recipient could not be removed - Compliance"}]},
     "Your API key may not do this. Recipient could not be removed - Compliance"),
    (429, {"Retry-After": "7"}, {"errors": [{"message": "Too many requests"}]},
     "Too many requests. Try again in 7 seconds."),
    (429, {}, None, "Too many requests. Wait a moment and try again."),
    (503, {}, {"errors": [{"message": "Service Unavailable"}]},
     "The service is unavailable right now (HTTP 503). Nothing was lost; try again in a moment."),
    (502, {"Content-Type": "text/html"}, "<html>bad gateway</html>",
     "The service is unavailable right now (HTTP 502). Nothing was lost; try again in a moment."),
    (400, {}, {"errors": [{"message": "Invalid list_id", "description": "list_id must be ..."}]},
     "Invalid list_id: list_id must be ..."),
])
def test_each_api_error_reads_as_a_sentence(page: Page, stack: Stack, status: int,
                                            headers: dict[str, str], body: Any,
                                            expected: str) -> None:
    """The UI's own error wording (api.js), run in the browser on answers of each kind."""
    page.goto(app_url(stack))
    said = page.evaluate("""async ([status, headers, body]) => {
        const { failure } = await import('./api.js');
        const text = body === null ? null : typeof body === 'string' ? body : JSON.stringify(body);
        return (await failure(new Response(text, { status, headers }))).message;
    }""", [status, headers, body])
    assert said == expected


def test_a_missing_file_under_app_is_a_json_404(stack: Stack) -> None:
    resp = httpx.get(stack.gateway_url + "/app/nope.js")
    assert resp.status_code == 404
    assert "errors" in resp.json()


# The browser's file picker is a native dialog that no test can drive: a stand-in that
# keeps what the page writes, chunk by chunk.
SAVE_PICKER = """
window.showSaveFilePicker = async (options) => {
  window.saved = { name: options.suggestedName, chunks: [], closed: false };
  return { createWritable: async () => ({
    write: async (chunk) => { window.saved.chunks.push(new TextDecoder().decode(chunk)); },
    close: async () => { window.saved.closed = true; },
    abort: async () => {},
  }) };
};
"""


def test_a_big_download_goes_to_the_file_as_it_arrives(page: Page, stack: Stack,
                                                       tenant: Tenant) -> None:
    where = domain()
    sent = {(f"d{i}@{where}", f"streamed {i}") for i in range(10_000)}
    Api(stack, tenant.key).bulk([{"recipient": r, "type": "non_transactional",
                                  "description": d} for r, d in sent])
    page.add_init_script(SAVE_PICKER)
    sign_in(page, stack, tenant.key)
    search_for(page, where)
    page.get_by_label("Save to a file as it arrives (for very large lists)").check()
    page.get_by_role("button", name="Download CSV").click()
    expect(page.get_by_role("status")).to_contain_text("Downloaded suppression-list.csv")
    saved = page.evaluate("window.saved")
    assert saved["closed"] and saved["name"] == "suppression-list.csv"
    rows = list(csv.DictReader(io.StringIO("".join(saved["chunks"]))))
    assert {(r["recipient"], r["description"]) for r in rows} == sent
