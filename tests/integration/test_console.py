"""The support console on PostgreSQL: sign-in, form tokens, roles, the timeline and notes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from sqlalchemy.orm import sessionmaker

from config.settings import ConsoleUser, Settings
from models.enums import EventKind
from models.event import InteractionEvent
from providers.registry import ProviderRegistry
from services.archive.jobs.janitor import Janitor
from services.archive.stores.port import ArchiveStore
from services.sending.communication import CommunicationService
from services.support.lookup import CallLookup, Standing
from tests.archive_fixtures import build_world, clean, seed
from tests.conftest import Database
from tests.console_fixtures import (
    SECRET,
    CapturedQueue,
    console_settings,
    nested_paragraphs,
    sign_in,
    token_of,
)
from tests.factories import send_email
from tests.fakes import FakeProvider
from workers.cli import main
from workers.console import create_app
from workers.console_auth import ConsoleMisconfigured

CUSTOMER = "C-CONSOLE-1"


@pytest.fixture
def queue() -> CapturedQueue:
    return CapturedQueue()


@pytest.fixture
def service(pg_db: Database, test_settings: Settings) -> CommunicationService:
    return CommunicationService(
        pg_db.sessions, ProviderRegistry.single(FakeProvider()), test_settings
    )


@pytest.fixture
def app(pg_db: Database, test_settings: Settings, queue: CapturedQueue) -> Flask:
    settings = console_settings(test_settings, console_page_size=3)
    return create_app(settings, sessions=pg_db.sessions, publisher=queue)


def test_signed_out_requests_are_sent_to_sign_in(app: Flask) -> None:
    client = app.test_client()
    for path in ("/", f"/customers/{CUSTOMER}", "/customer"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.location.endswith("/login"), path
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_sign_in_refuses_a_wrong_password_or_name_and_accepts_the_right_one(app: Flask) -> None:
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    for name, password in (("r.esender", "wrong-password-123"), ("nobody", "whatever-123")):
        refused = client.post(
            "/login", data={"username": name, "password": password, "csrf_token": token}
        )
        assert refused.status_code == 401
        assert "Wrong user name or password." in refused.get_data(as_text=True)
        assert client.get("/").status_code == 303
    signed, _ = sign_in(app, "r.esender")
    page = signed.get("/").get_data(as_text=True)
    assert "Signed in as <strong>r.esender</strong> (resender)" in page


def test_the_session_cookie_is_http_only_lax_and_secure_in_production(
    pg_db: Database, test_settings: Settings
) -> None:
    for environment, secure in (("test", False), ("production", True)):
        settings = console_settings(
            test_settings,
            environment=environment,
            broker_url="redis://127.0.0.1:6379/7",
            console_allow_local_users_in_production=True,
        )
        app = create_app(settings, sessions=pg_db.sessions, publisher=CapturedQueue())
        cookie = app.test_client().get("/login").headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def test_the_console_will_not_start_without_a_secret_or_users_or_with_plain_cookies(
    test_settings: Settings,
) -> None:
    cases = (
        ({"console_secret_key": None}, "INTERACTIONS_CONSOLE_SECRET_KEY"),
        ({"console_secret_key": "short"}, "32 characters"),
        ({"console_users": []}, "INTERACTIONS_CONSOLE_USERS is empty"),
        (
            {"environment": "production", "console_allow_local_users_in_production": True}
            | {"console_cookie_secure": False},
            "Secure",
        ),
        ({"environment": "production"}, "ALLOW_LOCAL_USERS_IN_PRODUCTION=true"),
    )
    for changes, message in cases:
        with pytest.raises(ConsoleMisconfigured, match=message):
            create_app(console_settings(test_settings, **changes), publisher=CapturedQueue())


def test_local_users_in_production_only_with_the_explicit_opt_in(
    pg_db: Database, test_settings: Settings
) -> None:
    production = console_settings(test_settings, environment="production")
    with pytest.raises(ConsoleMisconfigured, match="production refuses"):
        create_app(production, sessions=pg_db.sessions, publisher=CapturedQueue())
    opted_in = production.model_copy(update={"console_allow_local_users_in_production": True})
    app = create_app(opted_in, sessions=pg_db.sessions, publisher=CapturedQueue())
    client, _ = sign_in(app, "v.iewer")
    assert "Signed in as <strong>v.iewer</strong>" in client.get("/").get_data(as_text=True)


def test_every_form_without_its_token_is_refused(
    app: Flask, service: CommunicationService, queue: CapturedQueue
) -> None:
    failed = send_email(service, customer_id=CUSTOMER, recipient="not-an-address").interaction
    client, token = sign_in(app, "r.esender")
    forms = {
        "/login": {"username": "r.esender", "password": "x"},
        "/logout": {},
        "/find": {"channel": "email", "address": "a@example.org"},
        f"/customers/{CUSTOMER}/notes": {"content": "called"},
        f"/customers/{CUSTOMER}/interactions/{failed.interaction_uuid}/resend": {
            "address": "fixed@example.org"
        },
    }
    for path, data in forms.items():
        for bad in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1]}):
            answer = client.post(path, data={**data, **bad})
            assert answer.status_code == 400, (path, bad)
            page = answer.get_data(as_text=True)
            assert "did not come from this console" in page
            # Who is signed in, and a sign-out form that works, on the refusal too.
            assert "Signed in as <strong>r.esender</strong>" in page, path
            assert token_of(page) == token
    assert queue.messages == []
    assert service.get_history(CUSTOMER).items == [failed], "nothing was written"
    assert client.get("/").status_code == 200, "still signed in: logout was refused too"


def test_refusals_before_the_session_is_read_still_say_who_is_signed_in(app: Flask) -> None:
    stranger = app.test_client().post("/logout", data={"csrf_token": "forged"})
    assert stranger.status_code == 400
    assert "Signed in as" not in stranger.get_data(as_text=True), "no session: no bar"
    client, token = sign_in(app, "a.gent")
    huge = {"content": "a" * app.config["MAX_CONTENT_LENGTH"], "csrf_token": token}
    answer = client.post(f"/customers/{CUSTOMER}/notes", data=huge)
    assert answer.status_code == 413
    assert "Signed in as <strong>a.gent</strong>" in answer.get_data(as_text=True)


def test_no_paragraph_holds_another_on_the_pages_with_field_errors(app: Flask) -> None:
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    wrong = {"username": "x", "password": "y", "csrf_token": token}
    answers = {"sign-in refused": client.post("/login", data=wrong)}
    client, token = sign_in(app, "r.esender")
    bad_id = {"customer_id": "C 1!", "csrf_token": token}
    answers["id refused"] = client.post("/customer", data=bad_id)
    answers["note refused"] = client.post(
        f"/customers/{CUSTOMER}/notes", data={"csrf_token": token}
    )
    for name, answer in answers.items():
        html = answer.get_data(as_text=True)
        assert 'class="field-error"' in html, name
        assert nested_paragraphs(html) == [], name


def test_a_form_token_is_bound_to_its_session(app: Flask, service: CommunicationService) -> None:
    _, other_token = sign_in(app, "v.iewer")
    client, _ = sign_in(app, "r.esender")
    answer = client.post(
        f"/customers/{CUSTOMER}/notes", data={"content": "hi", "csrf_token": other_token}
    )
    assert answer.status_code == 400
    assert service.get_history(CUSTOMER).items == []


def test_a_note_is_recorded_with_its_author_and_the_staff_action(
    app: Flask, service: CommunicationService, pg_db: Database
) -> None:
    client, token = sign_in(app, "a.gent")
    answer = client.post(
        f"/customers/{CUSTOMER}/notes",
        data={
            "content": "Called: says the email never came.",
            "confirm_unknown": "yes",  # the customer has no record yet
            "csrf_token": token,
        },
    )
    assert answer.status_code == 303 and answer.location.endswith(f"/customers/{CUSTOMER}")
    [note] = service.get_history(CUSTOMER).items
    assert note.author == "a.gent" and note.body_content == "Called: says the email never came."
    with pg_db.sessions() as session:
        event = session.scalars(
            sa.select(InteractionEvent).where(InteractionEvent.interaction_id == note.id)
        ).one()
    assert (event.kind, event.actor, event.outcome) == (
        EventKind.STAFF_ACTION,
        "a.gent",
        "note_added",
    )
    page = client.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert "Phone note recorded." in page and "says the email never came." in page
    assert "Noted by a.gent" in page

    empty = client.post(f"/customers/{CUSTOMER}/notes", data={"content": "  ", "csrf_token": token})
    assert empty.status_code == 400 and "must be non-empty text" in empty.get_data(as_text=True)
    assert len(service.get_history(CUSTOMER).items) == 1


def test_the_timeline_is_newest_first_by_cursor_with_status_times_and_batch(
    app: Flask, service: CommunicationService
) -> None:
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    for i in range(4):
        service.add_note(
            CUSTOMER, f"call number {i}", author="agent", occurred_at=start + timedelta(hours=i)
        )
    sent = service.dispatch(
        CUSTOMER, "email", "welcome", {}, "b7:" + CUSTOMER, "p@example.org", batch_id="b7"
    )
    failed = send_email(service, customer_id=CUSTOMER, recipient="bad address")
    client, _ = sign_in(app, "v.iewer")
    first = client.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert first.index("Why it failed") < first.index(sent.interaction.provider_reference or "")
    assert failed.interaction.failure_reason and failed.interaction.failure_reason in first
    assert "<code>b7</code>" in first and "call number 3" in first and "call number 2" not in first
    older = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    assert older.startswith(f"/customers/{CUSTOMER}?cursor=")
    second = client.get(older).get_data(as_text=True)
    assert "call number 2" in second and "call number 0" in second and "call number 3" not in second
    assert 'rel="next"' not in second and ">Newest<" in second
    bad = client.get(f"/customers/{CUSTOMER}?cursor=not-a-cursor")
    assert bad.status_code == 400 and "not a cursor this service issued" in bad.get_data(
        as_text=True
    )


def test_an_interactions_history_is_shown_on_its_own_page(
    app: Flask, service: CommunicationService
) -> None:
    failed = send_email(service, customer_id=CUSTOMER, recipient="bad address").interaction
    client, _ = sign_in(app, "v.iewer")
    page = client.get(f"/customers/{CUSTOMER}/interactions/{failed.interaction_uuid}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "attempt started" in html and "failure reason" in html
    assert "Correct and resend" not in html, "a viewer is not offered the resend form"
    assert (
        client.get(f"/customers/C-OTHER/interactions/{failed.interaction_uuid}").status_code == 404
    )
    assert client.get(f"/customers/{CUSTOMER}/interactions/not-a-uuid").status_code == 404


def test_opening_a_customer_by_id_is_a_post_that_redirects_to_their_page(app: Flask) -> None:
    client, token = sign_in(app, "v.iewer")
    home = client.get("/").get_data(as_text=True)
    form = home.split('action="/customer"')[0].rsplit("<form", 1)[1]
    assert 'method="post"' in form
    answer = client.post("/customer", data={"customer_id": " C-OPEN-1 ", "csrf_token": token})
    assert (answer.status_code, answer.location) == (303, "/customers/C-OPEN-1")
    typo = client.post("/customer", data={"customer_id": "613 555 0142", "csrf_token": token})
    assert typo.status_code == 400 and "613 555 0142" not in (typo.location or "")
    assert client.get("/customer?customer_id=C-OPEN-1").status_code == 405
    assert client.post("/customer", data={"customer_id": "C-OPEN-1"}).status_code == 400


def test_find_by_email_is_a_post_that_redirects_to_the_customer_id_only(
    app: Flask, service: CommunicationService
) -> None:
    send_email(service, customer_id="C-FIND-1", recipient="Ada.Lovelace@example.org")
    send_email(service, customer_id="C-FIND-2", recipient="shared@example.org")
    send_email(service, customer_id="C-FIND-3", recipient="shared@example.org")
    service.dispatch("C-FIND-4", "sms", "reminder", {}, "sms-find", "+1 613 555 0142")
    client, token = sign_in(app, "v.iewer")

    def find(channel: str, address: str) -> tuple[int, str, str]:
        answer = client.post(
            "/find", data={"channel": channel, "address": address, "csrf_token": token}
        )
        return answer.status_code, answer.location or "", answer.get_data(as_text=True)

    status, location, _ = find("email", "ada.lovelace@EXAMPLE.org")
    assert (status, location) == (303, "/customers/C-FIND-1")
    assert find("sms", "613-555-0142")[:2] == (303, "/customers/C-FIND-4")
    status, _, page = find("email", "shared@example.org")
    assert status == 200 and "C-FIND-2" in page and "C-FIND-3" in page
    assert find("email", "nobody@example.org")[0] == 404
    status, _, page = find("email", "not an address")
    assert status == 400 and "There is a problem" in page and "not an address" not in page
    assert client.get("/find").status_code == 405


def test_archived_months_are_shown_on_request(
    pg_engine: sa.engine.Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    world = build_world(pg_engine, "local", tmp_path, request)
    try:
        cutoff = datetime(2024, 3, 1, tzinfo=UTC)
        old = seed(world.engine, cutoff - timedelta(days=40), customer_id=CUSTOMER)
        hot = seed(world.engine, cutoff + timedelta(days=3), customer_id=CUSTOMER)
        uuid_of = sa.text("SELECT CAST(interaction_uuid AS TEXT) FROM interactions WHERE id = :i")
        with world.engine.connect() as connection:
            old_uuid = connection.execute(uuid_of, {"i": old}).scalar_one()
            hot_uuid = connection.execute(uuid_of, {"i": hot}).scalar_one()
        Janitor(world.engine, world.store, world.settings).run(cutoff)
        with world.engine.connect() as connection:
            assert connection.execute(uuid_of, {"i": old}).all() == [], "old left the database"
        sessions = sessionmaker(bind=world.engine, expire_on_commit=False)
        settings = console_settings(world.settings)
        app = create_app(settings, sessions=sessions, publisher=CapturedQueue())
        client, _ = sign_in(app, "v.iewer")
        plain = client.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
        assert plain.count('class="entry"') == 1 and "Show archived months too" in plain
        both = client.get(f"/customers/{CUSTOMER}?archived=1").get_data(as_text=True)
        assert both.count('class="entry"') == 2 and both.count(">archived</span>") == 1
        assert both.index("2024-03-04") < both.index("2024-01-21")
        assert f"entry-{hot_uuid}" in plain and f"entry-{old_uuid}" not in plain
        entries = {
            uuid: next(e for e in both.split('<li class="entry">') if f"entry-{uuid}" in e)
            for uuid in (old_uuid, hot_uuid)
        }
        assert ">archived</span>" in entries[old_uuid]
        assert f"/interactions/{old_uuid}" not in entries[old_uuid], "no history page to open"
        assert ">archived</span>" not in entries[hot_uuid]
        assert f"/interactions/{hot_uuid}" in entries[hot_uuid]
    finally:
        clean(pg_engine)


def test_a_customer_whose_history_is_all_archived_is_not_called_unknown(
    pg_engine: sa.engine.Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    world = build_world(pg_engine, "local", tmp_path, request)
    try:
        cutoff = datetime(2024, 3, 1, tzinfo=UTC)
        seed(world.engine, cutoff - timedelta(days=40), customer_id="C-ARCHIVED-1")
        seed(world.engine, cutoff - timedelta(days=40), customer_id="C-NEIGHBOUR")
        Janitor(world.engine, world.store, world.settings).run(cutoff)
        sessions = sessionmaker(bind=world.engine, expire_on_commit=False)
        lookup = CallLookup(sessions, world.settings, archive=lambda: world.store)
        assert lookup.standing("C-ARCHIVED-1") is Standing.ARCHIVED, "read from the month's file"
        # No file's Bloom filter may hold this id: the store is never even opened.
        closed = CallLookup(sessions, world.settings, archive=_unreadable_store)
        assert closed.standing("C-NEVER-SEEN") is Standing.NO_RECORD
        # A filter may hold this one and the store cannot be read: no verdict, a yes is asked.
        unread = closed.standing("C-ARCHIVED-1")
        assert unread is Standing.UNCHECKED and unread.confirm_note
        app = create_app(
            console_settings(world.settings), sessions=sessions, publisher=CapturedQueue()
        )
        # A viewer reads (an agent's reading is recorded, in a table these tests do not empty).
        client, _ = sign_in(app, "v.iewer")
        page = client.get("/customers/C-ARCHIVED-1").get_data(as_text=True)
        assert "No record of customer" not in page and 'name="confirm_unknown"' not in page
        assert "The history of customer C-ARCHIVED-1 is in the archive." in page
        assert "in the last 24 months" in page
        assert 'href="/customers/C-ARCHIVED-1?archived=1">Show their archived history</a>' in page
        shown = client.get("/customers/C-ARCHIVED-1?archived=1").get_data(as_text=True)
        assert shown.count('class="entry"') == 1 and "is in the archive." not in shown
        unknown = client.get("/customers/C-NEVER-SEEN").get_data(as_text=True)
        assert "No record of customer C-NEVER-SEEN" in unknown and "in the archive" not in unknown

        client, token = sign_in(app, "a.gent")
        note = {"content": "Asked about an old letter", "csrf_token": token}
        recorded = client.post("/customers/C-ARCHIVED-1/notes", data=note)
        assert recorded.status_code == 303, "no confirmation asked for an archived customer"
        assert client.post("/customers/C-NEVER-SEEN/notes", data=note).status_code == 422
    finally:
        clean(pg_engine)


def _unreadable_store() -> ArchiveStore:
    raise OSError("the archive's disk is away")


def test_pages_are_not_cached_and_carry_a_strict_policy(app: Flask) -> None:
    client, _ = sign_in(app, "v.iewer")
    answer = client.get("/")
    assert answer.headers["Cache-Control"] == "no-store"
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    assert client.get("/static/console/console.css").status_code == 200
    assert SECRET not in answer.get_data(as_text=True)


def test_add_user_prints_an_entry_the_console_signs_in_with(
    pg_db: Database, test_settings: Settings
) -> None:
    runner = CliRunner()
    made = runner.invoke(
        main, ["console", "add-user", "a.agent", "--role", "resender", "--password", "x" * 14]
    )
    assert made.exit_code == 0, made.output
    entry = json.loads(made.output)
    assert entry["roles"] == ["resender"] and entry["password_hash"].startswith("scrypt:")
    assert "x" * 14 not in made.output
    user = ConsoleUser.model_validate(entry)
    app = create_app(
        console_settings(test_settings, console_users=[user]),
        sessions=pg_db.sessions,
        publisher=CapturedQueue(),
    )
    client, _ = sign_in(app, "a.agent", "x" * 14)
    assert "(resender)" in client.get("/").get_data(as_text=True)
    short = runner.invoke(main, ["console", "add-user", "b", "--role", "viewer", "--password", "s"])
    assert short.exit_code == 2 and "12 characters or more" in short.output


def _control(html: str, control_id: str) -> str:
    """The opening tag of the form control with this id."""
    found = re.search(rf'<(?:input|textarea)\s+id="{control_id}"[^>]*>', html)
    assert found, f"no control {control_id}"
    return found.group(0)


def test_errors_follow_the_heading_and_are_tied_to_their_fields(
    app: Flask, service: CommunicationService
) -> None:
    client = app.test_client()
    login = client.get("/login").get_data(as_text=True)
    assert "autofocus" not in login and "aria-invalid" not in login
    refused = client.post(
        "/login",
        data={
            "username": "r.esender",
            "password": "wrong-password-123",
            "csrf_token": token_of(login),
        },
    ).get_data(as_text=True)
    assert refused.index("<h1>Sign in</h1>") < refused.index('role="alert"')
    assert '<a href="#username">Wrong user name or password.</a>' in refused
    for name in ("username", "password"):
        tag = _control(refused, name)
        assert 'aria-invalid="true"' in tag and 'aria-describedby="sign-in-error"' in tag
    assert 'id="sign-in-error"' in refused

    client, token = sign_in(app, "a.gent")
    empty = client.post(f"/customers/{CUSTOMER}/notes", data={"content": " ", "csrf_token": token})
    page = empty.get_data(as_text=True)
    assert page.index("<h1>") < page.index('role="alert"')
    assert '<a href="#content">must be non-empty text</a>' in page
    tag = _control(page, "content")
    assert 'aria-invalid="true"' in tag and 'aria-describedby="content-error"' in tag
    assert 'id="content-error"' in page

    searched = client.post(
        "/find", data={"channel": "email", "address": "not an address", "csrf_token": token}
    ).get_data(as_text=True)
    tag = _control(searched, "address")
    assert 'aria-invalid="true"' in tag and 'aria-describedby="address-hint address-error"' in tag
    assert "aria-invalid" not in _control(searched, "customer_id"), "only the field at fault"

    failed = send_email(service, customer_id=CUSTOMER, recipient="bad address").interaction
    resender, resend_token = sign_in(app, "r.esender")
    answer = resender.post(
        f"/customers/{CUSTOMER}/interactions/{failed.interaction_uuid}/resend",
        data={"address": "still not an address", "csrf_token": resend_token},
    ).get_data(as_text=True)
    assert answer.index("<h1>") < answer.index('role="alert"')
    assert 'href="#address"' in answer.split('role="alert"')[1].split("</div>")[0]
    tag = _control(answer, "address")
    assert 'aria-invalid="true"' in tag and 'aria-describedby="address-hint address-error"' in tag
    assert "aria-invalid" not in _control(answer, "reason")


def test_a_viewer_reads_but_cannot_add_a_note(app: Flask, pg_db: Database) -> None:
    client, token = sign_in(app, "v.iewer")
    page = client.get(f"/customers/{CUSTOMER}").get_data(as_text=True)
    assert "What was said" not in page, "a viewer is not offered the note form"
    refused = client.post(
        f"/customers/{CUSTOMER}/notes", data={"content": "Called.", "csrf_token": token}
    )
    assert refused.status_code == 403
    assert pg_db.counts()["interactions"] == 0 and pg_db.counts()["interaction_events"] == 0
