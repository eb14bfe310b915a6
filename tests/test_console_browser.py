"""The console in a real browser (Debian's chromium, driven by Playwright) against the real stack.

The `intake_api` stack serves the query function, the upload gateway (signed PUTs, then the
finalize event) and the ingestion functions, so a dropped file really goes through storage and
the pipeline. Each main view is screenshotted under the test's output folder and checked with
axe-core (no serious or critical violation). Hostile file names and document text must show as
text and never run; the key must never appear in a URL or in the server's log.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from tests.fixtures.factories import Tenant, make_tenant
from tests.fixtures.intake import IntakeApi
from tests.pdfs import make_pdf, page_text

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
INTERACTIVE_BUDGET_MS = 1000
SETTLE_MS = 90_000
# Marks a payload that ran: it would log this, set a flag or add an element.
PAYLOAD_MARK = "PWNED-7f3a"
HOSTILE_NAME = f"<img src=x onerror=console.log('{PAYLOAD_MARK}')> notes.txt"
HOSTILE_TEXT = (
    f"<script>console.log('{PAYLOAD_MARK}')</script> The harbour beacon of Quillon flashes "
    "green every four seconds. "
    f"<img src=x onerror=\"window.__pwned=1;console.log('{PAYLOAD_MARK}')\"> "
    "Boats must keep the beacon to starboard when entering the harbour of Quillon."
)
# Before any page script: CSP violations and a flag an executed payload would set.
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@dataclass
class Watched:
    """What a page did: every request URL, console message and uncaught error."""

    page: Page
    shots: Path
    requests: list[Request] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, request: Request) -> None:
        # A bound method of a dataclass, not list.append: Playwright tags its handlers.
        self.requests.append(request)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=self.shots / f"{name}.png", full_page=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        launched.close()


@pytest.fixture
def watched(browser: Browser, tmp_path: Path) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    seen = Watched(page, shots)
    page.add_init_script(WATCH)
    page.on("request", seen.record)
    page.on("console", lambda message: seen.console.append(message.text))
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    try:
        yield seen
    finally:
        context.close()
        keep = Path("/tmp/console-screenshots")  # the last run's pictures, for people to look at
        shutil.copytree(shots, keep / shots.parent.name, dirs_exist_ok=True)


def console_url(api: IntakeApi) -> str:
    return f"{api.client.base_url}".rstrip("/") + "/console"


def assert_accessible(page: Page, view: str) -> None:
    results = Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{view}: " + "\n".join(bad)


def sign_in(page: Page, api: IntakeApi, tenant: Tenant) -> float:
    """Open the console, sign in; the first view's time to interactive in ms."""
    page.goto(console_url(api))
    interactive = page.wait_for_function(
        "() => performance.getEntriesByName('console-interactive')[0]?.startTime"
    ).json_value()
    field_ready = page.evaluate(
        "() => { const f = document.getElementById('api-key'); f.focus();"
        " return !f.disabled && document.activeElement === f; }"
    )
    assert field_ready
    page.get_by_label("API key").fill(tenant.api_key)
    page.get_by_role("button", name="Sign in").click()
    # A fresh function loads the API on its first call (seconds on a busy machine).
    expect(page.get_by_role("heading", name="Documents")).to_be_visible(timeout=60_000)
    return float(interactive)


def drop(page: Page, name: str, data: bytes, mime: str) -> None:
    """A drop of one file on the drop zone, with a DataTransfer built in the page."""
    transfer = page.evaluate_handle(
        """([bytes, name, type]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type }));
            return transfer;
        }""",
        [list(data), name, mime],
    )
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def wait_ready(page: Page, name: str) -> None:
    row = page.locator(".upload", has_text=name)
    expect(row.locator(".badge")).to_have_text("ready", timeout=SETTLE_MS)


def test_sign_in_drop_a_pdf_watch_it_become_ready_ask_and_open_a_citation(
    intake_api: IntakeApi, watched: Watched
) -> None:
    page = watched.page
    tenant = make_tenant("console")
    interactive_ms = sign_in(page, intake_api, tenant)
    print(f"console first view interactive after {interactive_ms:.0f} ms")
    assert interactive_ms < INTERACTIVE_BUDGET_MS

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_focused()
    watched.shot("1-sign-in")
    assert_accessible(page, "sign in")
    page.get_by_label("API key").fill(tenant.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("No documents yet")).to_be_visible()

    pdf = make_pdf(
        [
            "Lighthouse keeping manual. The Fastnet lamp is trimmed at dusk and every four "
            "hours. " + page_text(1, 200),
            "Storm procedure. During a gale the keeper logs the barometer reading every hour. "
            + page_text(2, 200),
        ]
    )
    drop(page, "manual/lighthouse.pdf", pdf, "application/pdf")
    wait_ready(page, "manual/lighthouse.pdf")
    expect(page.locator(".document", has_text="lighthouse.pdf")).to_be_visible()
    expect(page.locator("#rate")).to_contain_text("left")
    watched.shot("2-documents")
    assert_accessible(page, "documents")

    page.get_by_role("link", name="Ask").click()
    page.get_by_label("Question").fill("How often does the keeper log the barometer in a gale?")
    page.get_by_role("button", name="Ask").click()
    cite = page.locator("#answer button.cite").first
    expect(cite).to_be_visible(timeout=30_000)
    expect(page.locator("#answer")).to_contain_text("barometer")
    expect(page.locator("#results .result").first).to_contain_text("page 2")
    watched.shot("3-answer")
    assert_accessible(page, "answer")

    cite.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", name="lighthouse.pdf")).to_be_visible()
    expect(dialog.locator("#chunk-location")).to_contain_text("page 2")
    expect(dialog.locator("#chunk-state")).to_have_text("")
    expect(dialog.locator("#chunk-text")).to_contain_text("barometer reading every hour")
    expect(dialog.locator("#chunk-scores")).to_contain_text("RRF score")
    expect(dialog.locator("#chunk-attributes")).to_contain_text("manual/lighthouse.pdf")
    watched.shot("4-citation")
    assert_accessible(page, "citation")
    dialog.get_by_role("link", name="Open the document").click()
    expect(page.locator("#document-detail")).to_contain_text("application/pdf")

    page.get_by_role("link", name="Ask").click()
    page.get_by_label("Retrieve only").check()
    page.get_by_role("button", name="Ask").click()
    expect(page.get_by_role("heading", name="Ranked chunks")).to_be_visible()
    expect(page.locator("#results .result").first).to_contain_text("score")
    watched.shot("5-retrieve")

    page.get_by_role("link", name="Usage").click()
    expect(page.locator("figure.chart")).to_have_count(3)
    expect(page.locator("figure.chart").first).to_contain_text("Requests")
    watched.shot("6-usage")
    assert_accessible(page, "usage")

    page.set_viewport_size({"width": 360, "height": 780})
    page.get_by_role("link", name="Documents").click()
    expect(page.locator(".document", has_text="lighthouse.pdf")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    watched.shot("7-documents-360px")
    assert_accessible(page, "documents at 360 px")

    page.get_by_role("button", name="Reprocess lighthouse.pdf").click()
    expect(page.locator("#documents-state")).to_contain_text("queued again")
    page.once("dialog", lambda confirm: confirm.accept())
    page.get_by_role("button", name="Delete lighthouse.pdf").click()
    expect(page.locator("#documents-state")).to_contain_text("was deleted")
    assert not watched.errors, watched.errors


def test_hostile_names_and_text_show_as_text_and_never_run(
    intake_api: IntakeApi, watched: Watched
) -> None:
    page = watched.page
    tenant = make_tenant("hostile")
    sign_in(page, intake_api, tenant)
    drop(page, HOSTILE_NAME, HOSTILE_TEXT.encode(), "text/plain")
    wait_ready(page, HOSTILE_NAME)
    expect(page.locator(".document .doc-title")).to_have_text(HOSTILE_NAME)

    page.get_by_role("link", name="Ask").click()
    page.get_by_label("Question").fill("Which colour does the Quillon harbour beacon flash?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#answer button.cite").first).to_be_visible(timeout=30_000)
    page.locator("#answer button.cite").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#chunk-text")).to_contain_text("<script>console.log(")
    expect(dialog.locator("#chunk-title")).to_have_text(HOSTILE_NAME)
    expect(dialog.locator("#chunk-state")).to_have_text("")
    watched.shot("hostile-citation")
    page.get_by_role("button", name="Close").click()
    page.get_by_label("Retrieve only").check()
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#results .snippet").first).to_contain_text("onerror=")

    ran: dict[str, Any] = page.evaluate(
        """() => ({
            flag: window.__pwned ?? null,
            violations: window.__violations,
            images: document.querySelectorAll('img').length,
            scripts: [...document.scripts].map((s) => s.getAttribute('src')),
        })"""
    )
    assert ran == {
        "flag": None,
        "violations": [],
        "images": 0,
        "scripts": ["/console/app.js"],
    }, json.dumps(ran)
    assert not [m for m in watched.console if PAYLOAD_MARK in m]
    assert not watched.errors, watched.errors


def test_policy_header_and_the_key_stays_out_of_urls_and_the_log(
    intake_api: IntakeApi, watched: Watched
) -> None:
    page = watched.page
    response = page.goto(console_url(intake_api))
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert f"connect-src 'self' {intake_api.gateway.url};" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"

    page.get_by_label("API key").fill("aik_wrong-key-for-this-test")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("wrong or has been revoked")

    tenant = make_tenant("secret")
    sign_in(page, intake_api, tenant)
    page.get_by_role("link", name="Ask").click()
    page.get_by_label("Question").fill("Is anything here?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#ask-state")).to_contain_text("No document matched")
    page.get_by_role("link", name="Usage").click()
    expect(page.locator("figure.chart")).to_have_count(3)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_focused()
    stored = page.evaluate(
        "() => [sessionStorage.length, localStorage.length, document.cookie, location.href]"
    )
    assert stored[:3] == [0, 0, ""]

    api_calls = [r for r in watched.requests if "/v1/" in r.url]
    assert len(api_calls) >= 4
    for request in watched.requests:
        assert tenant.api_key not in request.url
    for request in api_calls:
        assert request.headers.get("authorization", "").startswith("Bearer ")
    log = intake_api.children[0].log_path.read_text(errors="replace")
    assert "/v1/projects" in log, "the access log is where requests are logged"
    assert tenant.api_key not in log
    assert tenant.api_key[12:] not in log
