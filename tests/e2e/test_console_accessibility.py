"""Every page of the support console passes axe-core with no serious or critical violation.

One console under gunicorn and one browser context for the module; the pages are opened the
way staff reach them (signed out, then as a resender, then as a viewer), each checked as it
stands, forms refused and accepted included. The console offers sign-in through an OpenID
Connect provider too (the local stub, on a real port), so the sign-in page is checked as
production shows it, with the provider's refusals and its absence (503).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import BrowserContext, Page, expect

from devtools.processes import ConsoleServer
from models.base import utcnow
from models.enums import InteractionStatus
from providers.pacing import RedisPacer
from providers.registry import ProviderRegistry
from services.archive.jobs.janitor import Janitor
from services.archive.stores.factory import open_store
from services.callbacks import inbox
from services.callbacks.parsing import ParsedCallback
from services.callbacks.status_events import StatusEvent
from services.sending.communication import CommunicationService
from services.sending.suppression import SuppressionList
from tests.archive_fixtures import clean, seed
from tests.browser_fixtures import (
    axe_run,
    axe_violations,
    blocking,
    chromium,
    describe_violations,
)
from tests.console_fixtures import PASSWORD, SECRET, users_env
from tests.e2e.conftest import Pipeline, running_pipeline
from tests.oidc_stub import CLIENT_ID, CLIENT_SECRET, OidcStub

pytestmark = pytest.mark.e2e
CUSTOMER = "C-7100"
ON_FILE = "grace.hopper@example.org"
BOUNCING = "old.bounce@example.org"
PHONE = "+12505550199"
BATCH = "a11y-batch"
ARCHIVED_CUSTOMER = "C-7200"
PROVIDER_BUTTON = "Sign in with your organisation's account"


@dataclass
class Seeded:
    """The console and the interactions behind its pages."""

    console: ConsoleServer
    pipeline: Pipeline
    provider: OidcStub
    failed: str
    sent: str
    sms: str
    note: str

    def interaction(self, interaction_uuid: str) -> str:
        """The address of an interaction's page."""
        return f"{self.console.url}/customers/{CUSTOMER}/interactions/{interaction_uuid}"


def _seed(pipeline: Pipeline) -> dict[str, str]:
    """A customer with a bounced email, a sent one to a suppressed address, an SMS and a note;
    another customer sent something at the same address."""
    pipeline.stub.configure(reject_recipients_containing="bounce")
    registry = ProviderRegistry.from_settings(pipeline.settings)
    service = CommunicationService(pipeline.sessions, registry, pipeline.settings)
    payload = {"name": "Grace"}
    failed = service.dispatch(CUSTOMER, "email", "welcome", payload, "a11y:1", BOUNCING)
    sent = service.dispatch(CUSTOMER, "email", "welcome", payload, "a11y:2", ON_FILE)
    service.dispatch("C-7101", "email", "welcome", payload, "a11y:4", ON_FILE)
    sms = service.dispatch(CUSTOMER, "sms", "welcome", payload, "a11y:3", PHONE)
    note = service.add_note(CUSTOMER, "Called: never got the email.", author="a.gent")
    service.upsert_contact(CUSTOMER, ON_FILE, PHONE)
    SuppressionList(pipeline.sessions, pipeline.settings).add("email", ON_FILE, "ops")
    pipeline.send_batch(BATCH, 1, start=7200)  # published only: no worker sends it
    _archive_a_customer(pipeline)
    assert failed.interaction.status.value == "failed"
    assert sent.interaction.status.value == sms.interaction.status.value == "sent"
    return {
        "failed": str(failed.interaction.interaction_uuid),
        "sent": str(sent.interaction.interaction_uuid),
        "sms": str(sms.interaction.interaction_uuid),
        "note": str(note.interaction_uuid),
    }


def _archive_a_customer(pipeline: Pipeline) -> None:
    """A customer whose only interaction, of January 2024, went to the console's archive."""
    settings = pipeline.settings.model_copy(update={"var_dir": pipeline.log_dir / "var"})
    cutoff = datetime(2024, 3, 1, tzinfo=UTC)
    seed(pipeline.engine, cutoff - timedelta(days=40), customer_id=ARCHIVED_CUSTOMER)
    report = Janitor(pipeline.engine, open_store(settings), settings).run(cutoff)
    assert report.interactions == 1


@pytest.fixture(scope="module")
def seeded(
    e2e_engine: sa.engine.Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("a11y")
    provider = OidcStub().start()
    with running_pipeline(e2e_engine, folder, "console-accessibility") as pipeline:
        uuids = _seed(pipeline)
        env = {
            **pipeline.env(),
            "INTERACTIONS_CONSOLE_USERS": users_env(),
            "INTERACTIONS_CONSOLE_SECRET_KEY": SECRET,
            # A short page, so the timeline has older pages to link to.
            "INTERACTIONS_CONSOLE_PAGE_SIZE": "3",
            # The provider beside the local users: the sign-in page offers both.
            "INTERACTIONS_CONSOLE_OIDC_ISSUER": provider.issuer,
            "INTERACTIONS_CONSOLE_OIDC_CLIENT_ID": CLIENT_ID,
            "INTERACTIONS_CONSOLE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        }
        console = ConsoleServer(env, pipeline.log_dir)
        try:
            yield Seeded(console, pipeline, provider, **uuids)
        finally:
            console.stop()
            provider.stop()
            clean(e2e_engine)  # the archive's catalogue too, which the next module does not empty


@pytest.fixture(scope="module")
def context() -> Iterator[BrowserContext]:
    with chromium() as browser:
        # The console's Content-Security-Policy refuses the inline script that brings axe-core
        # into the page. The pages run no script and load only their own stylesheet, so
        # lifting the policy changes nothing the check sees; tests/integration/test_console.py
        # asserts the policy itself.
        opened = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        yield opened
        opened.close()


def _sign_in(page: Page, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("User name", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def _sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()


@dataclass
class Step:
    """A page: its name, a text that shows the browser got there, and how staff get there."""

    name: str
    shows: str
    reach: Callable[[Page], object]


def _steps(seeded: Seeded) -> list[Step]:
    """Every page, in the order visited: signed out, as a resender, then as a viewer."""
    url = seeded.console.url
    timeline = f"{url}/customers/{CUSTOMER}"

    def go(address: str) -> Callable[[Page], object]:
        return lambda page: page.goto(address)

    def submit(address: str, label: str, value: str, button: str) -> Callable[[Page], None]:
        def reach(page: Page) -> None:
            page.goto(address)
            page.get_by_label(label, exact=True).fill(value)
            page.get_by_role("button", name=button).click()

        return reach

    def stale_form(page: Page) -> None:
        page.goto(url)
        page.locator("form.signout [name=csrf_token]").evaluate("(input) => { input.value = 'x'; }")
        _sign_out(page)

    def viewer_posts_a_note(page: Page) -> None:
        page.goto(url)
        _sign_out(page)
        _sign_in(page, url, "v.iewer")
        # The viewer's sign-out form, valid form token and all, sent to the note's address.
        page.locator("form.signout").evaluate(
            "(form, to) => { form.action = to; }", f"{timeline}/notes"
        )
        _sign_out(page)

    def provider_down(page: Page) -> None:
        seeded.provider.state.down = True
        try:
            page.goto(f"{url}/login")
            page.get_by_role("link", name=PROVIDER_BUTTON).click()
            expect(page.locator("h1")).to_have_text("Something went wrong")
        finally:
            seeded.provider.state.down = False

    def provider_refuses(page: Page) -> None:
        # The provider signs the user in, with a token for another client: the console refuses.
        seeded.provider.state.tamper = "audience"
        try:
            page.goto(f"{url}/login")
            page.get_by_role("link", name=PROVIDER_BUTTON).click()
            page.get_by_role("button", name="Sign in").click()  # the provider's own login form
            page.wait_for_url("**/login/oidc/callback?**")
        finally:
            seeded.provider.state.tamper = None

    def too_many_sign_ins(page: Page) -> None:
        page.goto(f"{url}/login")
        token = page.locator("[name=csrf_token]").first.input_value()
        wrong = {"username": "n.obody", "password": "wrong", "csrf_token": token}
        for _ in range(5):  # INTERACTIONS_CONSOLE_SIGN_IN_FAILURES_PER_USER, from the browser
            assert page.request.post(f"{url}/login", form=wrong).status == 401
        _sign_in(page, url, "n.obody", "wrong")

    def form_too_large(page: Page) -> None:
        page.goto(timeline)
        # Past the form limit (a longest note percent-encoded, and more): 413, body unread.
        page.get_by_label("What was said", exact=True).evaluate(
            "(area) => { area.removeAttribute('maxlength'); area.value = 'a'.repeat(200000); }"
        )
        page.get_by_role("button", name="Record the note").click()

    def banners(page: Page) -> None:
        # The provider's daily limit reached, and a provider callback that could not be applied.
        pipeline = seeded.pipeline
        registry = ProviderRegistry.from_settings(pipeline.settings)
        credential = next(p.credential for p in registry.all() if p.credential is not None)
        pacer = RedisPacer.from_url(pipeline.settings.resolved_broker_url)
        pacer.daily_limit_reached(credential, "email", utcnow() + timedelta(hours=3), "daily")
        unparsable = ParsedCallback("a11y-bad", StatusEvent("", InteractionStatus.DELIVERED))
        stored = inbox.store(pipeline.sessions, "notify", unparsable, b"{}", utcnow())
        inbox.apply(pipeline.sessions, stored.inbound_id, final=True, now=utcnow())
        page.goto(timeline)
        expect(page.get_by_text("1 provider callback(s) could not be applied")).to_be_visible()

    failed, sent = seeded.interaction(seeded.failed), seeded.interaction(seeded.sent)
    problem = "There is a problem"
    return [
        Step("sign-in, a provider and local users", PROVIDER_BUTTON, go(f"{url}/login")),
        Step("sign-in refused", problem, lambda page: _sign_in(page, url, "r.esender", "wrong")),
        Step("503: the provider is down", "could not be reached", provider_down),
        Step("sign-in refused by the console", "could not be verified", provider_refuses),
        Step("429: too many sign-ins", "Too many failed sign-ins", too_many_sign_ins),
        Step("search", "Find a customer", lambda page: _sign_in(page, url, "r.esender")),
        Step("search, id refused", problem, submit(url, "Customer id", "C 71!", "Open timeline")),
        Step(
            "search by address, none found",
            "Nothing was sent to that address",
            submit(url, "Email address or phone number", "no@example.org", "Find"),
        ),
        Step(
            "search by address, several found",
            "More than one customer",
            submit(url, "Email address or phone number", ON_FILE, "Find"),
        ),
        Step("timeline", "Timeline, newest first", go(timeline)),
        Step(
            "timeline, older page",
            "Newest",
            lambda page: page.get_by_role("link", name="Older").click(),
        ),
        Step("timeline, archived too", "Showing archived months too", go(f"{timeline}?archived=1")),
        Step("note refused", problem, submit(timeline, "What was said", " ", "Record the note")),
        Step(
            "note recorded",
            "Phone note recorded.",
            submit(timeline, "What was said", "Called back: all sorted.", "Record the note"),
        ),
        Step("413: a form too large", "The form was too large", form_too_large),
        Step("timeline, filtered", "Clear the filters", go(f"{timeline}?channel=email")),
        Step("batch", "Totals by status", go(f"{url}/batches/{BATCH}")),
        Step(
            "no record of the customer",
            "No record of customer C-9999",
            go(f"{url}/customers/C-9999"),
        ),
        Step(
            "customer whose history is archived",
            "is in the archive",
            go(f"{url}/customers/{ARCHIVED_CUSTOMER}"),
        ),
        Step(
            "note on no record, refused",
            "There is no record of customer C-9999",
            submit(f"{url}/customers/C-9999", "What was said", "A letter?", "Record the note"),
        ),
        Step("sent email, its body", "What it said", go(sent)),
        Step("failed email, resend form", "Correct and resend", go(failed)),
        Step(
            "failed email, resend refused",
            problem,
            submit(failed, "Email address", "grace@exampleorg", "Correct and resend"),
        ),
        Step(
            "resend queued",
            "Resend queued",
            submit(failed, "Email address", "grace.new@example.org", "Correct and resend"),
        ),
        Step("email with a resend queued", "An attempt is queued", go(failed)),
        Step("sent email, address suppressed", "This address is suppressed", go(sent)),
        Step("SMS", "SMS of", go(seeded.interaction(seeded.sms))),
        Step("phone note", "Phone call of", go(seeded.interaction(seeded.note))),
        Step("404: no such interaction", "Not found", go(seeded.interaction(str(uuid.uuid4())))),
        Step("400: stale form", "The request was refused", stale_form),
        Step("banners: provider held, callback rejected", "daily limit reached", banners),
        Step("403: a viewer posts a note", "You may not do that", viewer_posts_a_note),
        Step("timeline as a viewer", "(viewer)", go(timeline)),
        Step("sent email as a viewer", "shown to agents and resenders only", go(sent)),
    ]


def test_every_console_page_has_no_serious_accessibility_violation(
    seeded: Seeded, context: BrowserContext, artifacts: Path
) -> None:
    page = context.new_page()
    failures, found = [], {}
    for step in _steps(seeded):
        step.reach(page)
        expect(page.locator("body"), f"reaching {step.name!r}").to_contain_text(step.shows)
        results = axe_run(page)
        found[step.name] = {
            kind: sorted({f"{v['id']} ({v['impact']})" for v in results[kind]})
            for kind in ("violations", "incomplete")
        }
        serious = blocking(results["violations"])
        if serious:
            failures.append(f"{step.name} ({page.url}):\n{describe_violations(serious)}")
            page.screenshot(path=artifacts / f"{step.name}.png", full_page=True)
    # Every finding, moderate and minor ones and what axe left to a person included.
    (artifacts / "axe.json").write_text(json.dumps(found, indent=1))
    if failures:
        pytest.fail("\n\n".join(failures))


def test_the_check_refuses_an_unlabelled_field_and_faint_text(context: BrowserContext) -> None:
    page = context.new_page()
    page.set_content(
        '<html lang="en"><title>t</title><main><h1>A form</h1>'
        '<p style="color: #aaa">Faint text</p><input type="text"></main></html>'
    )
    found = axe_violations(page)
    assert {v["id"] for v in found} >= {"color-contrast", "label"}
    assert all(v["impact"] in ("serious", "critical") for v in found)
    assert "https://dequeuniversity.com/rules/axe/" in describe_violations(found)
    page.close()
