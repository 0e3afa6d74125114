"""Three calls a support agent takes, in a real browser against the console under gunicorn.

"I never got the email": the address and the bounce reason are on the first screen, and the
agent corrects the address and resends. "What did it say?": the body is shown to an agent,
not to a viewer. "Wrong customer id": a note on an id with no record waits for a yes.

One console serves the module; each test seeds its own customer in-process (the messages are
failed or sent through a fake provider), so no worker runs and no delivery is waited for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import sessionmaker

from config.settings import Settings
from devtools.database import empty_tables
from devtools.processes import ConsoleServer
from models import Contact, CustomerInteraction
from providers.base import RecipientRefused
from providers.registry import ProviderRegistry
from services.sending.communication import CommunicationService
from tests.conftest import TABLES
from tests.console_fixtures import PASSWORD, SECRET, users_env
from tests.e2e.conftest import BROKER, E2E_DB, _reveal
from tests.fakes import FakeProvider

pytestmark = pytest.mark.e2e
BOUNCED = "ada.old@example.org"
CORRECTED = "ada.new@example.org"
SUBJECT = "Your statement is ready"
BODY = "Hello Ada,\n\nYour November statement is ready. Reference 7731-B."


class Desk:
    """The console under gunicorn, and the ledger it reads, seeded in-process."""

    def __init__(self, settings: Settings, engine: sa.engine.Engine, log_dir: Path) -> None:
        self.settings = settings
        self.sessions = sessionmaker(bind=engine, expire_on_commit=False)
        self.log_dir = log_dir
        self.server = ConsoleServer(self._env(), log_dir)
        self.url = self.server.url

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
        for name, value in self.settings.model_dump(exclude={"var_dir"}).items():
            if value is not None:
                shown = _reveal(value)
                text = json.dumps(shown) if isinstance(shown, dict | list) else str(shown)
                env[f"INTERACTIONS_{name.upper()}"] = text
        env["INTERACTIONS_VAR_DIR"] = str(self.log_dir / "var")
        env["INTERACTIONS_CONSOLE_USERS"] = users_env()
        env["INTERACTIONS_CONSOLE_SECRET_KEY"] = SECRET
        return env

    def service(self, provider: FakeProvider) -> CommunicationService:
        return CommunicationService(self.sessions, ProviderRegistry.single(provider), self.settings)

    def row(self, customer_id: str) -> CustomerInteraction:
        with self.sessions() as session:
            return session.scalars(
                sa.select(CustomerInteraction).where(CustomerInteraction.customer_id == customer_id)
            ).one()

    def logs(self) -> str:
        return "".join(p.read_text() for p in self.log_dir.glob("*.log"))


@pytest.fixture(scope="module")
def desk(e2e_engine: sa.engine.Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    empty_tables(e2e_engine, *TABLES)
    broker = redis.Redis.from_url(BROKER)
    broker.flushdb()
    log_dir = tmp_path_factory.mktemp("console-calls")
    settings = Settings(
        environment="test",
        database_url=E2E_DB,
        broker_url=BROKER,
        var_dir=log_dir / "var",
        console_time_zone="America/Vancouver",
    )
    here = Desk(settings, e2e_engine, log_dir)
    yield here
    here.server.stop()
    broker.flushdb()


def _signed_in(browser: Browser, desk: Desk, username: str, width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{desk.url}/login")
    page.get_by_label("User name", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_contain_text(username)
    return page


def _open(page: Page, customer_id: str) -> None:
    page.get_by_label("Customer id", exact=True).fill(customer_id)
    page.get_by_role("button", name="Open timeline").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(customer_id)


def test_never_got_the_email(browser: Browser, desk: Desk, artifacts: Path) -> None:
    customer = "C-CALL-BOUNCE"
    provider = FakeProvider()
    provider.fail_next(
        RecipientRefused(f"550 5.1.1 <{BOUNCED}>: Recipient address rejected", status_code=550)
    )
    service = desk.service(provider)
    service.upsert_contact(customer, BOUNCED, None)
    bounced = service.dispatch(customer, "email", "welcome", {"name": "Ada"}, "nov:bounce")
    assert bounced.status.value == "failed"

    # A phone-sized screen: what the agent needs is on it without scrolling.
    page = _signed_in(browser, desk, "r.esender", width=390)
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    _open(page, customer)
    card = page.locator(".entry").first
    address = card.locator(".address")
    reason = card.get_by_text("Recipient address rejected")
    expect(address).to_have_text(BOUNCED)
    expect(address).to_be_in_viewport()
    expect(reason).to_be_in_viewport()
    expect(card.get_by_text("Address tried")).to_be_visible()
    page.screenshot(path=artifacts / "01-first-screen-phone.png")

    card.get_by_role("link", name="correct and resend").click()
    field = page.get_by_label("Email address", exact=True)
    expect(field).to_have_value(BOUNCED)
    field.fill(CORRECTED)
    page.get_by_role("button", name="Correct and resend").click()
    expect(page.get_by_role("status")).to_contain_text("Resend queued")
    page.screenshot(path=artifacts / "02-resend-queued.png", full_page=True)

    row = desk.row(customer)
    assert (row.status.value, row.claim_expires_at) == ("pending", None)
    with desk.sessions() as session:
        assert session.get_one(Contact, customer).email == CORRECTED
    assert not [url for url in visited if "@" in url or "example.org" in url]
    assert BOUNCED not in desk.logs() and CORRECTED not in desk.logs()


def test_what_did_it_say(browser: Browser, desk: Desk, artifacts: Path) -> None:
    customer = "C-CALL-BODY"
    sent = desk.service(FakeProvider(body=BODY, subject=SUBJECT)).dispatch(
        customer, "email", "statement", {"name": "Ada"}, "nov:body", "ada@example.org"
    )
    path = f"/customers/{customer}/interactions/{sent.interaction.interaction_uuid}"

    agent = _signed_in(browser, desk, "a.gent")
    _open(agent, customer)
    card = agent.locator(".entry").first
    expect(card).to_contain_text(SUBJECT)
    expect(card).to_contain_text("Your November statement is ready.")
    card.get_by_role("link", name="History and full message").click()
    expect(agent.get_by_role("heading", name="What it said")).to_be_visible()
    expect(agent.locator(".message-body")).to_contain_text("Reference 7731-B.")
    agent.screenshot(path=artifacts / "01-agent-reads-the-body.png", full_page=True)

    viewer = _signed_in(browser, desk, "v.iewer")
    viewer.goto(f"{desk.url}{path}")
    expect(viewer.get_by_text("shown to agents and resenders only")).to_be_visible()
    expect(viewer.locator(".address")).to_have_text("a••••@example.org")
    content = viewer.content()
    assert "Reference 7731-B" not in content and SUBJECT not in content
    viewer.screenshot(path=artifacts / "02-viewer-does-not.png", full_page=True)


def test_wrong_customer_id(browser: Browser, desk: Desk, artifacts: Path) -> None:
    page = _signed_in(browser, desk, "a.gent")
    _open(page, "C-9999")
    expect(page.get_by_text("No record of customer C-9999.")).to_be_visible()
    page.get_by_label("What was said", exact=True).fill("Caller asked about a letter.")
    page.get_by_role("button", name="Record the note").click()
    expect(page.get_by_role("alert")).to_contain_text("There is no record of customer C-9999")
    expect(page.get_by_label("What was said", exact=True)).to_have_value(
        "Caller asked about a letter."
    )
    page.screenshot(path=artifacts / "01-asked-to-confirm.png", full_page=True)
    with desk.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(CustomerInteraction)) == (
            session.scalar(
                sa.select(sa.func.count())
                .select_from(CustomerInteraction)
                .where(CustomerInteraction.customer_id != "C-9999")
            )
        )

    page.get_by_label("record the note against this id anyway").check()
    page.get_by_role("button", name="Record the note").click()
    expect(page.get_by_role("status")).to_contain_text("Phone note recorded.")
    expect(page.locator(".entry").first).to_contain_text("Caller asked about a letter.")
    assert desk.row("C-9999").author == "a.gent"
    page.screenshot(path=artifacts / "02-recorded-after-yes.png", full_page=True)
