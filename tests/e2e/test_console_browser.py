"""The support console in a real browser, on real processes end to end.

Headless Debian chromium driven by Playwright signs in to the console under gunicorn, opens a
customer whose email bounced at the stub provider, corrects the address and resends; a real
celery worker sends the new attempt and the stub's delivery receipt comes back through the
webhook app, and the page shows SENT, then DELIVERED.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from devtools.processes import ConsoleServer, wait_until
from models import CustomerInteraction
from providers.registry import ProviderRegistry
from services.callbacks.signatures import token_sha256
from services.sending.batches import DispatchMessage
from services.sending.communication import CommunicationService
from tests.console_fixtures import PASSWORD, SECRET, users_env
from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e
TOKEN = "e2e-console-callback-token-8c7d6e"
CUSTOMER = "C-4242"
KEY = f"welcome-2026:{CUSTOMER}"
BOUNCING = "old.bounce@example.org"
CORRECTED = "ada.fixed@example.org"


def _status(pipeline: Pipeline) -> tuple[str, int] | None:
    with pipeline.sessions() as session:
        row = session.scalars(
            sa.select(CustomerInteraction).where(CustomerInteraction.idempotency_key == KEY)
        ).one_or_none()
        return (row.status.value, row.attempt_count) if row else None


@pytest.fixture
def console(pipeline: Pipeline) -> Iterator[ConsoleServer]:
    env = {
        **pipeline.env(),
        "INTERACTIONS_CONSOLE_USERS": users_env(),
        "INTERACTIONS_CONSOLE_SECRET_KEY": SECRET,
    }
    server = ConsoleServer(env, pipeline.log_dir)
    yield server
    server.stop()


def _reload_until(page: Page, pattern: str, timeout: float) -> None:
    entry = page.locator(".entry").filter(has_text="Email").first

    def shown() -> bool:
        page.reload()
        return bool(re.search(pattern, entry.inner_text()))

    wait_until(shown, timeout, f"the page to show {pattern}", every=0.25)


def test_staff_correct_a_bounced_email_and_see_the_resend_delivered(
    pipeline: Pipeline, browser: Browser, artifacts: Path, console: ConsoleServer
) -> None:
    webhooks = pipeline.start_webhooks(token_sha256(TOKEN))
    pipeline.stub.configure(
        callback_url=f"{webhooks.url}/callbacks/notify",
        callback_token=TOKEN,
        callback_statuses=["delivered"],
        # Long enough for a reloading page to see SENT before the receipt makes it DELIVERED.
        callback_delay_ms=4000,
        reject_recipients_containing="bounce",
    )
    service = CommunicationService(pipeline.sessions, ProviderRegistry({}), pipeline.settings)
    service.upsert_contact(CUSTOMER, BOUNCING, None)
    pipeline.start_worker(concurrency=4)
    message = DispatchMessage(KEY, CUSTOMER, "email", "welcome", {"name": "Ada"}, None, "b-2026")
    pipeline.enqueue(message, 1)
    wait_until(lambda: _status(pipeline) == ("failed", 1), 30, "the first attempt to bounce")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    page.goto(f"{console.url}/customers/{CUSTOMER}")
    expect(page).to_have_url(f"{console.url}/login")
    page.get_by_label("User name", exact=True).fill("r.esender")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_contain_text("r.esender")
    page.screenshot(path=artifacts / "01-signed-in.png", full_page=True)

    page.get_by_label("Customer id", exact=True).fill(CUSTOMER)
    page.get_by_role("button", name="Open timeline").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(CUSTOMER)
    entry = page.locator(".entry").filter(has_text="Email").first
    expect(entry).to_contain_text("FAILED")
    expect(entry).to_contain_text("b-2026")
    page.screenshot(path=artifacts / "02-customer-with-failed-email.png", full_page=True)

    entry.get_by_role("link", name=re.compile("correct and resend")).click()
    address = page.get_by_label("Email address", exact=True)
    expect(address).to_have_value(BOUNCING)
    expect(page.locator(".history")).to_contain_text("failure reason")
    address.fill(CORRECTED)
    page.screenshot(path=artifacts / "03-correction.png", full_page=True)
    page.get_by_role("button", name="Correct and resend").click()
    expect(page.get_by_role("status")).to_contain_text("Resend queued")

    _reload_until(page, r"\bSENT\b", 30)
    assert _status(pipeline) == ("sent", 2)
    page.screenshot(path=artifacts / "04-sent.png", full_page=True)
    _reload_until(page, r"\bDELIVERED\b", 60)
    page.screenshot(path=artifacts / "05-delivered.png", full_page=True)

    assert _status(pipeline) == ("delivered", 2)
    [accepted] = pipeline.stub.notifications()
    assert accepted["email_address"] == CORRECTED
    assert service.get_history(CUSTOMER).items[0].recipient == CORRECTED
    entry.get_by_role("link", name=re.compile("History")).click()
    history = page.locator(".history")
    expect(history).to_contain_text("resend requested")
    expect(history).to_contain_text("by r.esender")
    expect(history).to_contain_text("sent → delivered")
    page.screenshot(path=artifacts / "06-history.png", full_page=True)
    assert visited and not [url for url in visited if "@" in url or "example.org" in url]
    logs = "".join(p.read_text() for p in pipeline.log_dir.glob("*.log"))
    assert CORRECTED not in logs and BOUNCING not in logs
    (artifacts / "visited.json").write_text(json.dumps(visited, indent=1))


def test_an_agent_adds_a_note_by_keyboard_and_is_not_offered_a_resend(
    pipeline: Pipeline, browser: Browser, artifacts: Path, console: ConsoleServer
) -> None:
    registry = ProviderRegistry.from_settings(pipeline.settings)
    service = CommunicationService(pipeline.sessions, registry, pipeline.settings)
    failed = service.dispatch(CUSTOMER, "email", "welcome", {}, KEY, "not an address")
    assert failed.interaction.status.value == "failed"
    page = browser.new_page()
    page.goto(f"{console.url}/login")
    page.get_by_label("User name", exact=True).fill("a.gent")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_text("Signed in as")).to_contain_text("a.gent")
    page.goto(f"{console.url}/customers/{CUSTOMER}")
    page.get_by_label("What was said", exact=True).fill("Called back: all sorted.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Phone note recorded.")
    expect(page.locator(".entry").first).to_contain_text("Noted by a.gent")
    page.goto(
        f"{console.url}/customers/{CUSTOMER}/interactions/{failed.interaction.interaction_uuid}"
    )
    expect(page.locator(".history")).to_contain_text("attempt started")
    expect(page.get_by_role("button", name=re.compile("resend|Send again"))).to_have_count(0)
    page.screenshot(path=artifacts / "agent.png", full_page=True)

    # 200% zoom of a 1280-pixel window: the page reflows, nothing scrolls sideways.
    page.set_viewport_size({"width": 640, "height": 900})
    page.goto(f"{console.url}/customers/{CUSTOMER}")
    page.screenshot(path=artifacts / "agent-200-percent.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
