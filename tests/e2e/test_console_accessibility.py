"""Every page of the support console passes axe-core with no serious or critical violation.

One console under gunicorn and one browser context for the module; the pages are opened the
way staff reach them (signed out, then as a resender, then as a viewer), each checked as it
stands, forms refused and accepted included.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import BrowserContext, Page, expect

from devtools.processes import ConsoleServer
from providers.registry import ProviderRegistry
from services.sending.communication import CommunicationService
from services.sending.suppression import SuppressionList
from tests.browser_fixtures import (
    axe_run,
    axe_violations,
    blocking,
    chromium,
    describe_violations,
)
from tests.console_fixtures import PASSWORD, SECRET, users_env
from tests.e2e.conftest import Pipeline, running_pipeline

pytestmark = pytest.mark.e2e
CUSTOMER = "C-7100"
ON_FILE = "grace.hopper@example.org"
BOUNCING = "old.bounce@example.org"
PHONE = "+12505550199"
BATCH = "a11y-batch"


@dataclass
class Seeded:
    """The console and the interactions behind its pages."""

    console: ConsoleServer
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
    assert failed.interaction.status.value == "failed"
    assert sent.interaction.status.value == sms.interaction.status.value == "sent"
    return {
        "failed": str(failed.interaction.interaction_uuid),
        "sent": str(sent.interaction.interaction_uuid),
        "sms": str(sms.interaction.interaction_uuid),
        "note": str(note.interaction_uuid),
    }


@pytest.fixture(scope="module")
def seeded(
    e2e_engine: sa.engine.Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("a11y")
    with running_pipeline(e2e_engine, folder, "console-accessibility") as pipeline:
        uuids = _seed(pipeline)
        env = {
            **pipeline.env(),
            "INTERACTIONS_CONSOLE_USERS": users_env(),
            "INTERACTIONS_CONSOLE_SECRET_KEY": SECRET,
            # A short page, so the timeline has older pages to link to.
            "INTERACTIONS_CONSOLE_PAGE_SIZE": "3",
        }
        console = ConsoleServer(env, pipeline.log_dir)
        try:
            yield Seeded(console, **uuids)
        finally:
            console.stop()


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

    failed, sent = seeded.interaction(seeded.failed), seeded.interaction(seeded.sent)
    problem = "There is a problem"
    return [
        Step("sign-in", "Sign in", go(f"{url}/login")),
        Step("sign-in refused", problem, lambda page: _sign_in(page, url, "r.esender", "wrong")),
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
        Step("timeline, filtered", "Clear the filters", go(f"{timeline}?channel=email")),
        Step("batch", "Totals by status", go(f"{url}/batches/{BATCH}")),
        Step(
            "no record of the customer",
            "No record of customer C-9999",
            go(f"{url}/customers/C-9999"),
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
