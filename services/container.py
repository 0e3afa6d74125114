"""The composition root: each process's engine, key ring, providers, publisher and services.

Every entry point (the worker and its tasks, the webhook app, the console, the command line)
takes what it needs from ``container()``. Parts are built on first use, so a command that only
reads the database never builds a provider. A forked child (a prefork worker, a gunicorn
worker) must not use its parent's connections: ``after_fork()`` drops what holds them, and
``container()`` does the same on its own when it finds itself in a new process.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast, overload

import jwt
import redis
from celery import Celery
from sqlalchemy.engine import Engine

from broker.app import create_app
from broker.epoch import BrokerEpoch
from broker.parking import PURPOSE as PARKING_PURPOSE
from broker.parking import ParkingLot
from broker.publisher import CeleryPublisher
from broker.wake import InboxWake
from config.settings import Settings, get_settings
from models.base import utcnow
from models.crypto import KeyRing, keyring
from models.enums import ChannelType
from models.session import SessionFactory, build_engine, session_factory
from providers.pacing import Pacer, PaceSettings, RedisPacer, Unpaced
from providers.registry import ProviderRegistry
from services.archive.stores.factory import open_store
from services.archive.stores.port import ArchiveStore
from services.callbacks.signatures import BearerVerifier, StandardWebhooksVerifier, decode_secret
from services.clients.key_cache import KeyCache
from services.clients.keys import ApiKeys
from services.clients.rate import RateLimit
from services.clients.tokens import TokenVerifier
from services.ledger.statements import ThreadConnections
from services.sending.acceptance import Acceptance
from services.sending.batch_control import BatchGate
from services.sending.batches import BatchProducer, Publisher
from services.sending.communication import CommunicationService
from services.sending.pacing import PaceKeeper
from services.sending.polling import Poller
from services.sending.reconciliation import Reconciler
from services.sending.suppression import SuppressionList
from services.support.disclosures import Disclosures
from services.support.lookup import CallLookup
from services.support.service import SupportService
from services.support.sessions import StaffSessions
from services.support.sign_in_throttle import SignInThrottle
from services.support.staff import LocalDirectory
from telemetry import metrics

T = TypeVar("T")


def process_identity() -> str:
    """This process among all that share a metrics folder: its host name and its pid."""
    # Containers sharing one metrics volume have their own PID namespaces, so PIDs repeat
    # across them; the host name keeps each process's files apart. "_" would split the name.
    return f"{socket.gethostname()}-{os.getpid()}".replace("_", "-")


metrics.count_across_processes(process_identity)
# Parts that survive a fork: they hold no connection of their own (Celery resets its pools).
FORK_SAFE = frozenset({"celery"})


class part(Generic[T]):
    """A part built once on first use, under the container's lock, unless given at construction."""

    def __init__(self, build: Callable[[Container], T]) -> None:
        self._build = build
        self._name = build.__name__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, owner: None, kind: type[Container]) -> part[T]: ...

    @overload
    def __get__(self, owner: Container, kind: type[Container]) -> T: ...

    def __get__(self, owner: Container | None, kind: type[Container]) -> T | part[T]:
        if owner is None:
            return self
        built = owner._parts.get(self._name)
        if built is None:
            with owner._lock:
                built = owner._parts.get(self._name)
                if built is None:
                    built = owner._parts[self._name] = self._build(owner)
        return cast(T, built)


class Container:
    """One process's collaborators; ``given`` replaces any part by name (tests, one-off tools)."""

    def __init__(self, settings: Settings, **given: Any) -> None:
        self.settings = settings
        self._given = dict(given)
        self._parts: dict[str, Any] = dict(given)
        self._lock = threading.RLock()

    @part
    def engine(self) -> Engine:
        """The engine for the configured database."""
        return build_engine(self.settings.resolved_database_url, self.settings)

    @part
    def autocommit_engine(self) -> Engine:
        """An engine whose statements commit alone: one-INSERT writers skip a round trip."""
        return build_engine(self.settings.resolved_database_url, self.settings, autocommit=True)

    @part
    def sessions(self) -> SessionFactory:
        """Short-lived sessions on ``engine``."""
        return session_factory(self.engine)

    @part
    def autocommit_sessions(self) -> SessionFactory:
        """Sessions on ``autocommit_engine``, for writers of one statement at a time.

        A container given its own ``sessions`` (a test's, rolled back at its end; a tool's)
        writes through those alone, never through a second engine of its own.
        """
        if "sessions" in self._given:
            return self.sessions
        return session_factory(self.autocommit_engine)

    @part
    def keyring(self) -> KeyRing:
        """The key ring sealed columns read and write with (the one the models hold)."""
        return keyring()

    @part
    def providers(self) -> ProviderRegistry:
        """The providers the settings name, one per channel."""
        return ProviderRegistry.from_settings(self.settings)

    @part
    def celery(self) -> Celery:
        """The Celery app: the worker's own in a worker, a publisher's elsewhere."""
        return create_app(self.settings)

    @part
    def publisher(self) -> Publisher:
        """Publishes dispatch tasks in bulk."""
        return CeleryPublisher(self.celery)

    @part
    def inbox_wake(self) -> InboxWake:
        """Makes sure a drain is queued for stored callbacks."""
        return InboxWake(self.celery)

    @part
    def archive_store(self) -> ArchiveStore:
        """Where archived files are written and read: a local directory or an S3 bucket."""
        return open_store(self.settings)

    @part
    def notify_verifier(self) -> BearerVerifier:
        """Checks a Notify callback's bearer token against the configured hashes."""
        return BearerVerifier(tuple(self.settings.webhook_notify_token_sha256))

    @part
    def signed_verifier(self) -> StandardWebhooksVerifier:
        """Checks a Standard Webhooks signature against the configured secrets."""
        secrets = self.settings.webhook_signing_secrets
        return StandardWebhooksVerifier(
            tuple(decode_secret(secret.get_secret_value()) for secret in secrets),
            self.settings.webhook_timestamp_tolerance_seconds,
        )

    @part
    def metrics_verifier(self) -> BearerVerifier:
        """Checks a scrape's bearer token against the configured hashes."""
        return BearerVerifier(tuple(self.settings.metrics_token_sha256))

    @part
    def pacer(self) -> Pacer:
        """The providers' shared pace, in the broker's Redis (none on the embedded default)."""
        url = self.settings.resolved_broker_url
        if not url.startswith(("redis://", "rediss://")):
            return Unpaced()
        settings = self.settings
        return RedisPacer.from_url(
            url,
            PaceSettings(
                horizon_seconds=settings.pace_horizon_seconds,
                failures_to_open=settings.breaker_failures,
                failure_window_seconds=settings.breaker_window_seconds,
                cooldown_seconds=settings.breaker_cooldown_seconds,
            ),
        )

    @part
    def pace(self) -> PaceKeeper:
        """Admits sends at the providers' pace and passes on what they answer."""
        return PaceKeeper(self.pacer, self.settings)

    @part
    def parking(self) -> ParkingLot | None:
        """Messages held for long in Redis; None where the broker is not Redis."""
        url = self.settings.resolved_broker_url
        if not url.startswith(("redis://", "rediss://")):
            return None
        ring = self.keyring
        return ParkingLot(
            redis.Redis.from_url(url, socket_timeout=5),
            lambda text: ring.seal(text, PARKING_PURPOSE),
            lambda sealed: ring.open(sealed, PARKING_PURPOSE),
        )

    @part
    def communication(self) -> CommunicationService:
        """The RFC's four operations, sending through the configured providers."""
        # A container given its own sessions (a test's, rolled back) writes through those alone.
        alone = None if "sessions" in self._given else self.engine
        return CommunicationService(
            self.sessions, self.providers, self.settings, utcnow, self.pace, alone, self.batch_gate
        )

    @part
    def ledger_reader(self) -> CommunicationService:
        """The same operations with no provider: for processes that read and note, never send."""
        return CommunicationService(self.sessions, ProviderRegistry({}), self.settings)

    @part
    def support(self) -> SupportService:
        """What support staff do for a caller; resends go through the workers."""
        return SupportService(self.sessions, self.publisher, self.settings)

    @part
    def call_lookup(self) -> CallLookup:
        """The console's look-ups during a call: known customers, addresses, batches."""
        return CallLookup(self.sessions, self.settings, archive=lambda: self.archive_store)

    @part
    def disclosures(self) -> Disclosures:
        """The audit trail of personal data staff were shown in full."""
        return Disclosures(self.sessions)

    @part
    def suppressions(self) -> SuppressionList:
        """The suppression list operators and support staff read and change."""
        return SuppressionList(self.sessions, self.settings)

    @part
    def staff_directory(self) -> LocalDirectory:
        """The console's local user list."""
        return LocalDirectory(self.settings.console_users)

    @part
    def staff_sessions(self) -> StaffSessions:
        """Console sessions kept in the database."""
        return StaffSessions(self.sessions, self.staff_directory, self.settings)

    @part
    def sign_in_throttle(self) -> SignInThrottle:
        """Failed sign-ins counted in the database."""
        return SignInThrottle(self.sessions, self.settings)

    @part
    def broker_epoch(self) -> BrokerEpoch | None:
        """The broker's lifetime token; None where the broker is not Redis."""
        url = self.settings.resolved_broker_url
        if not url.startswith(("redis://", "rediss://")):
            return None
        return BrokerEpoch(redis.Redis.from_url(url, socket_timeout=5))

    def current_epoch(self) -> str | None:
        """The broker's present lifetime, for what producers record of their messages."""
        epoch = self.broker_epoch
        return epoch.current() if epoch is not None else None

    @part
    def batch_producer(self) -> BatchProducer:
        """Streams a batch's recipients into dispatch tasks."""
        return BatchProducer(
            self.sessions,
            self.publisher,
            self.settings,
            self.current_epoch,
            self.batch_gate,
            self.check_template,
        )

    def check_template(self, channel: ChannelType, template_key: str, fields: set[str]) -> None:
        """Whether the channel's provider can send ``template_key`` with payloads of ``fields``."""
        self.providers.for_channel(channel).check_template(template_key, channel, fields)

    @part
    def batch_gate(self) -> BatchGate:
        """What a batch's dispatch asks first: sending, held, or dropped."""
        url = self.settings.resolved_broker_url
        client = (
            redis.Redis.from_url(url, socket_timeout=5)
            if url.startswith(("redis://", "rediss://"))
            else None
        )
        return BatchGate(self.sessions, client)

    @part
    def acceptance(self) -> Acceptance:
        """Records a message sent over the API and hands it to the workers.

        On autocommit connections: on PostgreSQL the row and its event are one statement
        (``writes.accept``), atomic alone, so a BEGIN and a COMMIT round trip would add nothing.
        """
        return Acceptance(
            self.autocommit_sessions, self.publisher, self.settings, self.check_template
        )

    @part
    def api_keys(self) -> ApiKeys:
        """The HTTP API's client keys: checked on every request, from Redis when it is there.

        Without Redis (the filesystem broker) each check is one PostgreSQL statement.
        """
        url = self.settings.resolved_broker_url
        cache = (
            KeyCache(redis.Redis.from_url(url, socket_timeout=5))
            if url.startswith(("redis://", "rediss://"))
            else None
        )
        return ApiKeys(self.autocommit_sessions, cache=cache)

    @part
    def api_rate_limit(self) -> RateLimit:
        """Each API client's request rate, in the broker's Redis (unlimited without Redis)."""
        url = self.settings.resolved_broker_url
        client = (
            redis.Redis.from_url(url, socket_timeout=5)
            if url.startswith(("redis://", "rediss://"))
            else None
        )
        settings = self.settings
        return RateLimit(
            client, settings.api_rate_limit_requests, settings.api_rate_limit_window_seconds
        )

    @part
    def api_tokens(self) -> TokenVerifier | None:
        """Checks the identity provider's client-credentials tokens; None when not configured."""
        settings = self.settings
        issuer, audience = settings.api_jwt_issuer, settings.api_jwt_audience
        jwks = settings.api_jwt_jwks_url
        if not (issuer and audience and jwks):
            return None
        return TokenVerifier(
            issuer,
            audience,
            jwt.PyJWKClient(jwks, cache_keys=True, lifespan=300),
            settings.api_jwt_algorithms,
            settings.api_jwt_client_claim,
            settings.api_jwt_scope_claim,
        )

    def reconciler(self) -> Reconciler:
        """A reconciler for one run: settles expired claims by asking the providers."""
        return Reconciler(
            self.sessions,
            self.providers,
            self.publisher,
            self.settings,
            utcnow,
            self.current_epoch,
        )

    def poller(self) -> Poller:
        """A poller for one run: asks the providers about outcomes that never came."""
        return Poller(self.sessions, self.providers, self.settings, utcnow)

    def after_fork(self) -> None:
        """Forget every part that holds a connection; the child builds its own on next use."""
        with self._lock:
            for name, built in list(self._parts.items()):
                if name in FORK_SAFE or name in self._given:
                    continue
                if isinstance(built, Engine):
                    built.dispose(close=False)  # the parent's sockets stay the parent's
                del self._parts[name]

    def close(self) -> None:
        """Close the engines' pooled connections (at exit, or when a test is done with it)."""
        for name in ("engine", "autocommit_engine"):
            engine = self._parts.get(name)
            if isinstance(engine, Engine) and name not in self._given:
                ThreadConnections.close_all(engine)
                engine.dispose()


_lock = threading.Lock()
_current: Container | None = None
_pid = 0


def container() -> Container:
    """This process's container, built on the process's settings at first use."""
    global _current, _pid  # noqa: PLW0603 - the one per-process slot of the composition root
    settings = get_settings()
    with _lock:
        if _current is not None and _pid != os.getpid():
            _current.after_fork()
            _pid = os.getpid()
        if _current is None or _current.settings is not settings:
            # Settings reloaded (a test, or a tool that changed the environment): start again.
            _current = Container(settings)
            _pid = os.getpid()
        return _current


def after_fork(**_: Any) -> None:
    """Signal receiver for a forked child (Celery's worker_process_init, gunicorn's post_fork)."""
    global _pid  # noqa: PLW0603
    with _lock:
        if _current is not None:
            _current.after_fork()
        _pid = os.getpid()
