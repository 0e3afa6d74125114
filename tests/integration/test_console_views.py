"""The console's views on their own: imported, on a bare app, without ``create_app``."""

from __future__ import annotations

from flask import Flask, g

from config.settings import Settings
from providers.registry import ProviderRegistry
from services.sending.communication import CommunicationService
from services.support.staff import StaffUser
from tests.conftest import Database
from tests.console_fixtures import SECRET, CapturedQueue
from tests.factories import send_email
from tests.fakes import FakeProvider
from workers import console
from workers.console_auth import sign_in_pages
from workers.webapp import use_container

CUSTOMER = "C-VIEW-1"


def test_the_health_view_answers_on_an_app_with_only_the_pages() -> None:
    app = Flask(__name__)
    app.register_blueprint(console.pages)
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 200 and answer.get_data(as_text=True) == "ok"


def test_the_customer_view_shows_the_history_from_the_database(
    pg_db: Database, test_settings: Settings
) -> None:
    sender = CommunicationService(
        pg_db.sessions, ProviderRegistry.single(FakeProvider()), test_settings
    )
    sent = send_email(sender, CUSTOMER)
    app = Flask(console.__name__)
    app.secret_key = SECRET
    use_container(app, test_settings, sessions=pg_db.sessions, publisher=CapturedQueue())
    app.register_blueprint(console.pages)
    app.register_blueprint(sign_in_pages)
    with app.test_request_context(f"/customers/{CUSTOMER}"):
        g.user = StaffUser("v.iewer", ("viewer",))
        html, status = console.customer(CUSTOMER)
    assert status == 200
    assert f"entry-{sent.interaction.interaction_uuid}" in html and html.count('class="entry"') == 1
