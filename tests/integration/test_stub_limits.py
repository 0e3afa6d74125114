"""The stub pushes back as Notify does: rate limits, a daily cap, revoked keys and outages."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devtools.stub.server import StubNotifyServer
from providers.notify import ApiKey, notify_token
from tests.stub_fixtures import SERVICE_ID, TEMPLATES, TEST_API_KEY

EMAIL = "ada.lovelace@example.org"
OTHER_SERVICE_ID = "8a1b6c3e-52f0-4d7e-9a43-0c5e2f7d9b11"
RATE_LIMITED = {
    "status_code": 429,
    "errors": [
        {
            "error": "RateLimitError",
            "message": "Exceeded rate limit for key type LIVE of 25 requests per 1 seconds",
        }
    ],
}


def token_for(key: str = TEST_API_KEY) -> str:
    """A fresh bearer token signed with ``key``."""
    return notify_token(ApiKey.parse(key), int(time.time()))


def key_of(service_id: str) -> str:
    """A made-up API key of ``service_id``."""
    return f"stub_key-{service_id}-{uuid.uuid4()}"


@pytest.fixture
def stub(stub_notify: StubNotifyServer) -> StubNotifyServer:
    return stub_notify


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def send(
    session: requests.Session,
    stub: StubNotifyServer,
    reference: str | None = None,
    token: str | None = None,
) -> requests.Response:
    """POST one email to the stub, signed with the test key unless ``token`` is given."""
    body = {"email_address": EMAIL, "template_id": TEMPLATES["welcome"], "reference": reference}
    headers = {"Authorization": f"Bearer {token or token_for()}"}
    return session.post(f"{stub.url}/v2/notifications/email", json=body, headers=headers, timeout=2)


def control(stub: StubNotifyServer, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the stub's control API, on a connection of its own."""
    if body is None:
        response = requests.get(f"{stub.url}{path}", timeout=2)
    else:
        response = requests.post(f"{stub.url}{path}", json=body, timeout=2)
    response.raise_for_status()
    return response.json()


def statuses(responses: list[requests.Response]) -> list[int]:
    return [response.status_code for response in responses]


def test_the_26th_send_in_a_second_is_rate_limited_until_the_window_slides(
    stub: StubNotifyServer, session: requests.Session
) -> None:
    stub.configure(rate_limit=25, rate_window_seconds=1)
    started = time.monotonic()
    responses = [send(session, stub) for _ in range(26)]
    assert time.monotonic() - started < 1, "too slow to test a one-second window"

    assert statuses(responses) == [201] * 25 + [429]
    assert responses[-1].json() == RATE_LIMITED
    assert "Retry-After" not in responses[-1].headers
    time.sleep(1.05)
    assert send(session, stub).status_code == 201
    counts = stub.stats()
    assert counts["refused"]["rate_limited"] == 1
    assert (counts["received"], counts["accepted"]) == (27, 26)


@pytest.mark.parametrize(("counts_refused", "then"), [(True, 429), (False, 201)])
def test_refused_sends_count_in_the_window_only_when_asked(
    stub: StubNotifyServer, session: requests.Session, counts_refused: bool, then: int
) -> None:
    stub.configure(rate_limit=2, rate_window_seconds=0.5, rate_limit_counts_refused=counts_refused)
    started = time.monotonic()
    assert statuses([send(session, stub), send(session, stub)]) == [201, 201]
    time.sleep(0.25)
    assert statuses([send(session, stub), send(session, stub)]) == [429, 429]
    # The accepted sends have left the window; the refused ones have not, if they count.
    time.sleep(max(0.0, 0.6 - (time.monotonic() - started)))
    assert send(session, stub).status_code == then


def test_a_rate_limited_answer_carries_retry_after_when_configured(
    stub: StubNotifyServer, session: requests.Session
) -> None:
    stub.configure(rate_limit=1, rate_window_seconds=60, retry_after_seconds=7)
    assert send(session, stub).status_code == 201
    refused = send(session, stub)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "7"
    assert refused.json()["errors"][0]["message"] == (
        "Exceeded rate limit for key type LIVE of 1 requests per 60 seconds"
    )


def test_each_key_has_a_window_of_its_own(session: requests.Session) -> None:
    with StubNotifyServer(rate_limit=1, rate_window_seconds=60) as stub:
        first, second = token_for(key_of(SERVICE_ID)), token_for(key_of(OTHER_SERVICE_ID))
        assert send(session, stub, token=first).status_code == 201
        assert send(session, stub, token=first).status_code == 429
        assert send(session, stub, token=second).status_code == 201


def test_the_daily_cap_refuses_the_fourth_send_until_the_day_is_reset(
    stub: StubNotifyServer, session: requests.Session
) -> None:
    stub.configure(daily_limit=3)
    assert statuses([send(session, stub) for _ in range(3)]) == [201] * 3
    refused = send(session, stub)
    assert refused.status_code == 429
    assert refused.json() == {
        "status_code": 429,
        "errors": [
            {"error": "TooManyRequestsError", "message": "Exceeded send limits (3) for today"}
        ],
    }

    stub.reset_daily_limit()
    assert statuses([send(session, stub) for _ in range(4)]) == [201] * 3 + [429]
    control(stub, "/_stub/reset-daily-limit", {})
    assert send(session, stub).status_code == 201
    assert stub.stats()["refused"]["daily_limit"] == 2


def test_the_daily_cap_starts_again_after_its_period(
    stub: StubNotifyServer, session: requests.Session
) -> None:
    stub.configure(daily_limit=1, daily_reset_seconds=0.3)
    assert statuses([send(session, stub), send(session, stub)]) == [201, 429]
    time.sleep(0.35)
    assert send(session, stub).status_code == 201


def test_a_revoked_key_is_refused_on_every_endpoint(
    stub: StubNotifyServer, session: requests.Session
) -> None:
    control(stub, "/_stub/config", {"revoked_keys": [SERVICE_ID]})
    revoked = {
        "status_code": 403,
        "errors": [{"error": "AuthError", "message": "Invalid token: API key revoked"}],
    }
    refused = send(session, stub)
    listed = session.get(
        f"{stub.url}/v2/notifications",
        headers={"Authorization": f"Bearer {token_for()}"},
        timeout=2,
    )
    assert (refused.status_code, refused.json()) == (403, revoked)
    assert (listed.status_code, listed.json()) == (403, revoked)

    stub.configure(revoked_keys=[])
    assert send(session, stub).status_code == 201
    stub.configure(revoke_all=True)
    assert send(session, stub).status_code == 403
    assert stub.stats()["refused"]["revoked"] == 3


def test_revoking_one_key_leaves_the_others_working(session: requests.Session) -> None:
    with StubNotifyServer(revoked_keys=[SERVICE_ID]) as stub:
        assert send(session, stub, token=token_for(key_of(SERVICE_ID))).status_code == 403
        assert send(session, stub, token=token_for(key_of(OTHER_SERVICE_ID))).status_code == 201


def test_an_error_outage_answers_500_then_ends_by_itself(
    stub: StubNotifyServer, session: requests.Session
) -> None:
    stub.configure(outage_mode="error", outage_seconds=0.4)
    failed = send(session, stub)
    assert failed.status_code == 500
    assert failed.json() == {
        "status_code": 500,
        "errors": [{"error": "Exception", "message": "Internal server error"}],
    }
    assert session.get(f"{stub.url}/_status", timeout=2).status_code == 500
    # The control API stays up, so a test can still read and end the outage.
    assert control(stub, "/_stub/stats")["refused"]["outage"] == 2

    time.sleep(0.5)
    assert send(session, stub).status_code == 201
    assert control(stub, "/_stub/config")["outage_mode"] is None


def test_a_refusing_outage_drops_connections_then_listens_again(
    stub: StubNotifyServer, session: requests.Session
) -> None:
    assert send(session, stub).status_code == 201  # leaves a keep-alive connection open
    answer = control(stub, "/_stub/config", {"outage_mode": "refuse", "outage_seconds": 0.5})
    assert answer["outage_mode"] == "refuse"

    with pytest.raises(requests.ConnectionError):
        send(session, stub)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stub.url}/_status", timeout=2)

    time.sleep(0.6)
    assert send(session, stub).status_code == 201
    assert control(stub, "/_stub/config")["outage_mode"] is None


def test_setting_no_outage_ends_the_one_under_way(
    stub: StubNotifyServer, session: requests.Session
) -> None:
    stub.configure(outage_mode="refuse", outage_seconds=60)
    with pytest.raises(requests.ConnectionError):
        send(session, stub)
    stub.configure(outage_mode=None)
    assert send(session, stub).status_code == 201


def test_a_stub_started_in_an_outage_refuses_from_the_start(session: requests.Session) -> None:
    with StubNotifyServer(outage_mode="error", outage_seconds=0.3) as stub:
        assert send(session, stub, token="not-checked").status_code == 500
        time.sleep(0.4)
        assert send(session, stub, token="not-checked").status_code == 201


def test_the_counters_show_every_reference_accepted_once_despite_refusals(
    stub: StubNotifyServer, session: requests.Session
) -> None:
    stub.configure(rate_limit=3, rate_window_seconds=0.3, rate_limit_counts_refused=False)
    references = [f"ref-{n}" for n in range(6)]
    pending = list(references)
    while pending:
        if send(session, stub, pending[0]).status_code == 201:
            pending.pop(0)
        else:
            time.sleep(0.05)

    counts = stub.stats()
    assert counts["receipts"] == dict.fromkeys(references, 1)
    assert counts["accepted"] == 6
    assert counts["refused"]["rate_limited"] >= 1
    assert counts["received"] == counts["accepted"] + counts["refused"]["rate_limited"]

    stub.reset()
    assert stub.stats()["refused"] == {
        "rate_limited": 0,
        "daily_limit": 0,
        "revoked": 0,
        "outage": 0,
    }
    assert stub.stats()["received"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"rate_limit": -1},
        {"rate_window_seconds": 0},
        {"rate_limit_counts_refused": "yes"},
        {"retry_after_seconds": 1.5},
        {"daily_limit": True},
        {"daily_reset_seconds": -5},
        {"revoked_keys": "not-a-list"},
        {"revoke_all": 1},
        {"outage_mode": "flaky"},
        {"outage_seconds": 0},
    ],
)
def test_bad_limit_settings_are_refused_with_a_reason(
    stub: StubNotifyServer, change: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=next(iter(change))):
        stub.configure(**change)
    response = requests.post(f"{stub.url}/_stub/config", json=change, timeout=2)
    assert response.status_code == 400
