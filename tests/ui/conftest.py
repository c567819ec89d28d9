"""Browser tests: Debian's Chromium (never a downloaded browser) driven by Playwright against
the session's real stack, with a screenshot of the page saved when a test fails."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from gateway.stack import Stack

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
NARROW = {"width": 375, "height": 812}


# Per module, not per session: Playwright's sync API keeps an event loop running on this
# thread while it is open, which asyncio.run (the stack's start-up) and pytest-asyncio's
# tests cannot share. So the stack starts first, and the browser stops with the module.
@pytest.fixture(scope="module")
def playwright(stack: Stack) -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    found = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                       args=CHROMIUM_ARGS)
    yield found
    found.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def shot_name(item: pytest.Item) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", item.name)


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page (its own sessionStorage); a full-page screenshot when the test failed."""
    viewport = getattr(request, "param", None) or {"width": 1280, "height": 900}
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    context.set_default_timeout(15_000)
    found = context.new_page()
    yield found
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        found.screenshot(path=ARTIFACTS / f"FAILED-{shot_name(request.node)}.png",
                         full_page=True)
    context.close()


def save_shot(page: Page, name: str) -> Path:
    """A screenshot kept from a passing run (listed in the issue's note)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def app_url(stack: Stack) -> str:
    return stack.gateway_url + "/app/"


def sign_in(page: Page, stack: Stack, key: str) -> None:
    page.goto(app_url(stack))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator("#result-count")).not_to_be_empty()
    expect(page.locator("#search")).to_have_attribute("aria-busy", "false")
