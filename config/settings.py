"""One typed settings object, read from ``INTERACTIONS_*`` environment variables."""

from __future__ import annotations

import difflib
import logging
import os
import zoneinfo
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

ENV_PREFIX = "INTERACTIONS_"
# Read outside Settings: by the test suite, the benchmarks and the console's test server.
NAMES_READ_ELSEWHERE = frozenset(
    {
        "INTERACTIONS_TEST_DATABASE_URL",
        "INTERACTIONS_TEST_BROKER_URL",
        "INTERACTIONS_BENCH_DATABASE_URL",
        "INTERACTIONS_HTTPS_ONLY",
    }
)

ProviderName = Literal["log", "notify", "smtp"]
ConsoleRole = Literal["viewer", "agent", "resender"]
# How a confidential client proves itself at an OpenID Connect provider's token endpoint.
TokenAuthMethod = Literal["client_secret_basic", "client_secret_post"]


class ConsoleUser(BaseModel):
    """One member of staff allowed into the support console without an identity provider."""

    username: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")
    # A werkzeug.security hash (scrypt by default): `interactions console add-user` makes one.
    password_hash: SecretStr
    roles: list[ConsoleRole] = Field(min_length=1)


# Notify's ids are UUIDs; an unsubscribe link is an absolute http(s) URL with no spaces.
_UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_URL_PATTERN = r"^https?://[^\s<>\x00-\x1f\x7f]+$"


class SenderIdentity(BaseModel):
    """Where replies to a template's messages go and how a reader unsubscribes (Notify ids)."""

    email_reply_to_id: str | None = Field(default=None, pattern=_UUID_PATTERN)
    sms_sender_id: str | None = Field(default=None, pattern=_UUID_PATTERN)
    one_click_unsubscribe_url: str | None = Field(
        default=None, max_length=2000, pattern=_URL_PATTERN
    )


def _same_role_names() -> dict[str, ConsoleRole]:
    return {"viewer": "viewer", "agent": "agent", "resender": "resender"}


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="INTERACTIONS_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    # A folder of files named after settings (Docker and Kubernetes secrets): the file
    # INTERACTIONS_NOTIFY_API_KEY (or interactions_notify_api_key) holds that setting's value.
    # A variable in the environment wins over its file.
    secrets_dir: Path | None = None

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite under var_dir when unset."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker URL; kombu's filesystem transport when unset."
    )
    database_pool_size: int = Field(default=5, ge=1, le=100)
    database_statement_timeout_ms: int = Field(default=30_000, ge=0)

    claim_lease_seconds: int = Field(default=300, ge=5)
    task_time_limit_seconds: int = Field(default=120, ge=2)
    broker_visibility_timeout_seconds: int = Field(default=3600, ge=60)
    dispatch_max_retries: int = Field(default=8, ge=0)
    retry_backoff_base_seconds: float = Field(default=2.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=300.0, gt=0)
    worker_concurrency: int = Field(default=32, ge=1)
    worker_prefetch_multiplier: int = Field(default=4, ge=1)
    batch_chunk_size: int = Field(default=1000, ge=1, le=10_000)
    reconcile_batch_size: int = Field(default=500, ge=1)
    # How long a released claim waits for its retry before reconciliation enqueues it again;
    # unset: the longest retry countdown plus a minute.
    released_claim_grace_seconds: int | None = Field(default=None, ge=1)
    max_payload_bytes: int = Field(default=16_384, ge=256)
    max_note_chars: int = Field(default=10_000, ge=1)
    default_phone_region: str = Field(default="CA", min_length=2, max_length=2)
    history_max_limit: int = Field(default=500, ge=1)
    # Days a permanent delivery failure keeps its address suppressed (sending.suppression).
    suppression_days: int = Field(default=90, ge=1, le=3650)

    email_provider: ProviderName = "log"
    sms_provider: ProviderName = "log"
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    provider_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    provider_pool_size: int = Field(default=32, ge=1)
    # Sending at the provider's pace (providers.pacing): how far ahead a worker thread may book
    # a slot and sleep for it; a longer wait puts the message back with a countdown, and one
    # longer than pace_park_after_seconds (a daily limit, a refused key) parks it in Redis.
    pace_horizon_seconds: float = Field(default=5.0, gt=0, le=60)
    pace_park_after_seconds: float = Field(default=120.0, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_window_seconds: float = Field(default=60.0, gt=0)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)

    notify_base_url: str = "http://127.0.0.1:6011"
    notify_api_key: SecretStr | None = None
    # template key -> Notify template id, as JSON: {"welcome": "f33517ff-..."}
    notify_templates: dict[str, str] = Field(default_factory=dict)
    # The service key's limit: GOV.UK Notify allows 3,000 a minute, GC Notify 1,000.
    notify_rate_per_minute: int = Field(default=3000, ge=1)
    # Both Notify services count their daily limits per UTC day.
    notify_daily_reset: str = Field(
        default="00:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"
    )
    notify_daily_reset_timezone: str = "UTC"
    # template key -> its sender identity, as JSON: {"welcome": {"email_reply_to_id": "..."}}
    notify_sender_identity: dict[str, SenderIdentity] = Field(default_factory=dict)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "no-reply@example.gov"
    smtp_message_id_domain: str = "interactions.invalid"
    smtp_rate_per_minute: int = Field(default=600, ge=1)
    # Sent as List-Unsubscribe (with one-click List-Unsubscribe-Post) on every SMTP email.
    smtp_list_unsubscribe_url: str | None = Field(
        default=None, max_length=2000, pattern=_URL_PATTERN
    )
    templates_dir: Path = Path(__file__).resolve().parent / "templates"

    # Data keys by id (base64 of 32 bytes), one of them active; the blind-index key apart.
    encryption_keys: dict[str, SecretStr] = Field(default_factory=dict)
    encryption_active_key: str | None = None
    blind_index_key: SecretStr | None = None

    # Hex SHA-256 of each bearer token Notify may call us with (several, for rotation).
    webhook_notify_token_sha256: list[str] = Field(default_factory=list)
    # Standard Webhooks secrets ("whsec_..."), several at once for rotation.
    webhook_signing_secrets: list[SecretStr] = Field(default_factory=list)
    webhook_max_body_bytes: int = Field(default=65_536, ge=1024)
    webhook_timestamp_tolerance_seconds: int = Field(default=300, ge=1)
    # How long an event for an unknown interaction is retried before it waits as an orphan.
    status_retry_window_seconds: int = Field(default=300, ge=0)
    # Callbacks one drain applies before it queues the next one.
    inbox_drain_batch_size: int = Field(default=200, ge=1, le=10_000)
    poll_after_hours: float = Field(default=6.0, gt=0)
    unknown_after_hours: float = Field(default=72.0, gt=0)

    # Retention (services.archive): months hot in PostgreSQL, then years in the cold archive,
    # counted from when a month leaves the database: a file is purged once its month is more
    # than archive_hot_months + archive_cold_years old (nine years by default).
    # A directory, or s3://bucket/prefix for any S3-compatible store; var_dir/archive when unset.
    archive_url: str | None = None
    # The S3 endpoint for MinIO or a government object store; AWS's own when unset.
    # Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID, a profile, a role).
    archive_s3_endpoint_url: str | None = None
    archive_s3_region: str | None = None
    archive_hot_months: int = Field(default=24, ge=1)
    archive_cold_years: int = Field(default=7, ge=1)
    # Interactions per id window: each window is read, written and deleted on its own.
    archive_chunk_rows: int = Field(default=50_000, ge=10, le=1_000_000)
    # Level 1 compresses the ledger's lines 1.7 times as fast as level 3, to files no larger
    # (bench.archive); higher levels trade the janitor's speed for smaller files.
    archive_zstd_level: int = Field(default=1, ge=1, le=19)
    # The one read that finds the expired id range may scan that range; nothing waits on it.
    archive_plan_timeout_seconds: int = Field(default=900, ge=1)
    archive_task_time_limit_seconds: int = Field(default=6 * 3600, ge=60)

    # Operations: logs, metrics and Flower.
    # "json" or "text"; unset means JSON in production and readable text elsewhere.
    log_format: Literal["json", "text"] | None = None
    # Hex SHA-256 of each bearer token allowed to scrape the webhook app's /metrics.
    metrics_token_sha256: list[str] = Field(default_factory=list)
    # prometheus_client's own variable: where every process of one host writes its metrics.
    prometheus_multiproc_dir: Path | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )
    # "user:password" pairs Flower accepts over HTTP basic auth; Flower refuses to start without.
    flower_basic_auth: list[SecretStr] = Field(default_factory=list)
    flower_address: str = "127.0.0.1"
    flower_port: int = Field(default=5555, ge=1, le=65535)
    # Tasks Flower keeps in memory; its default (100,000) costs hundreds of MiB in bulk sends.
    flower_max_tasks: int = Field(default=10_000, ge=100)

    # The support console (workers.console): staff sign in from this list, as JSON.
    console_users: list[ConsoleUser] = Field(default_factory=list)
    # Signs the session cookie; the console refuses to start in production without one.
    console_secret_key: SecretStr | None = None
    # Whether the session cookie is sent over HTTPS only; unset means in production only.
    console_cookie_secure: bool | None = None
    # A console session ends after this long, however active, or after the idle time unused.
    console_session_minutes: int = Field(default=480, ge=1, le=24 * 60)
    console_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Local users are for development, or where no identity provider exists: in production
    # the console refuses them unless this says they are meant.
    console_allow_local_users_in_production: bool = False
    # Failed local sign-ins per user name within the window before each further attempt for
    # that name waits (the delay doubles per failure, from the base up to the window); and the
    # failures per client address within the window after which that address is refused.
    console_sign_in_failures_per_user: int = Field(default=5, ge=1)
    console_sign_in_failures_per_address: int = Field(default=100, ge=1)
    console_sign_in_window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    console_sign_in_delay_seconds: int = Field(default=30, ge=1, le=24 * 60 * 60)
    # Reverse proxies in front of the console whose X-Forwarded-For and X-Forwarded-Proto are
    # believed; 0 trusts none, so the client address is the connection's.
    console_trusted_proxy_hops: int = Field(default=0, ge=0, le=5)
    console_page_size: int = Field(default=20, ge=1, le=200)
    # The zone staff and callers keep time in: the console shows it with UTC beside it.
    console_time_zone: str = "America/Vancouver"
    # Sign-in through an OpenID Connect provider (authorization code with PKCE), e.g. Keycloak.
    console_oidc_issuer: str | None = None
    console_oidc_client_id: str | None = None
    console_oidc_client_secret: SecretStr | None = None
    # Where the provider sends staff back; derived from the request when unset.
    console_oidc_redirect_url: str | None = None
    # The id_token claim listing the user's roles, and which of them grant which console role.
    console_oidc_roles_claim: str = "roles"
    console_oidc_role_map: dict[str, ConsoleRole] = Field(default_factory=_same_role_names)
    # How the console proves itself at the token endpoint; unset: the first of these two the
    # provider's discovery document lists (client_secret_basic when it lists none).
    console_oidc_token_auth_method: TokenAuthMethod | None = None
    # How long the provider's discovery document and signing keys are kept before they are read
    # again; a token signed by a key not yet seen has the keys read again at once.
    console_oidc_metadata_max_age_seconds: int = Field(default=3600, ge=60, le=24 * 3600)

    # The HTTP API (workers.api): bodies, batch uploads, and each client's request rate.
    api_max_body_bytes: int = Field(default=65_536, ge=1024)
    api_batch_max_rows: int = Field(default=1_000_000, ge=1)
    # Requests one client may make per window, counted in Redis across every API process.
    api_rate_limit_requests: int = Field(default=6000, ge=1)
    api_rate_limit_window_seconds: int = Field(default=60, ge=1, le=3600)
    # OAuth2 client-credentials tokens from the organisation's identity provider; keys only
    # when the issuer is unset.
    api_jwt_issuer: str | None = None
    api_jwt_audience: str | None = None
    api_jwt_jwks_url: str | None = None
    # The claim naming the calling client, and the one listing its scopes (space-separated).
    api_jwt_client_claim: str = "azp"
    api_jwt_scope_claim: str = "scope"
    api_jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])

    @property
    def resolved_log_format(self) -> Literal["json", "text"]:
        """The log format in force: as configured, else JSON in production only."""
        if self.log_format:
            return self.log_format
        return "json" if self.environment == "production" else "text"

    @model_validator(mode="after")
    def _time_zone_is_known(self) -> Settings:
        try:
            zoneinfo.ZoneInfo(self.console_time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"INTERACTIONS_CONSOLE_TIME_ZONE {self.console_time_zone!r} is not a time zone "
                "name such as America/Vancouver"
            ) from None
        return self

    @model_validator(mode="after")
    def _production_needs_real_services(self) -> Settings:
        if self.environment == "production" and not (self.database_url and self.broker_url):
            raise ValueError(
                "production needs INTERACTIONS_DATABASE_URL and INTERACTIONS_BROKER_URL; "
                "the embedded SQLite and filesystem defaults are for trying the service only"
            )
        return self

    @model_validator(mode="after")
    def _production_needs_keys(self) -> Settings:
        if self.environment == "production" and not (
            self.encryption_keys and self.encryption_active_key and self.blind_index_key
        ):
            raise ValueError(
                "production needs INTERACTIONS_ENCRYPTION_KEYS, INTERACTIONS_ENCRYPTION_ACTIVE_KEY "
                "and INTERACTIONS_BLIND_INDEX_KEY: personal data is never stored in clear"
            )
        return self

    @model_validator(mode="after")
    def _production_signs_in_over_https(self) -> Settings:
        # The redirect carries the authorization code, and the issuer serves the signing keys.
        if self.environment != "production" or not self.console_oidc_enabled:
            return self
        if not (self.console_oidc_issuer or "").startswith("https://"):
            raise ValueError(
                "in production INTERACTIONS_CONSOLE_OIDC_ISSUER must be an https:// URL"
            )
        if not (self.console_oidc_redirect_url or "").startswith("https://"):
            raise ValueError(
                "in production INTERACTIONS_CONSOLE_OIDC_REDIRECT_URL must be set to the console's "
                "https:// callback URL (https://<console>/login/oidc/callback)"
            )
        return self

    @model_validator(mode="after")
    def _leases_outlive_tasks(self) -> Settings:
        # A claim must outlive the task holding it, and the broker must not hand a message
        # to a second worker while the first may still run it or hold it for a retry.
        if self.claim_lease_seconds <= self.task_time_limit_seconds:
            raise ValueError("claim_lease_seconds must exceed task_time_limit_seconds")
        longest = self.task_time_limit_seconds + self.retry_backoff_max_seconds
        if self.broker_visibility_timeout_seconds <= longest:
            raise ValueError(
                "broker_visibility_timeout_seconds must exceed task_time_limit_seconds "
                "plus retry_backoff_max_seconds"
            )
        if self.provider_connect_timeout_seconds + self.provider_timeout_seconds >= (
            self.task_time_limit_seconds
        ):
            raise ValueError("provider timeouts must fit within task_time_limit_seconds")
        return self

    @property
    def released_grace_seconds(self) -> float:
        """How long a released claim may wait for its retry's message before it is thought lost."""
        if self.released_claim_grace_seconds is not None:
            return float(self.released_claim_grace_seconds)
        return self.retry_backoff_max_seconds + 60

    @property
    def console_oidc_enabled(self) -> bool:
        """Whether staff sign in to the console through an OpenID Connect provider."""
        return bool(self.console_oidc_issuer and self.console_oidc_client_id)

    @property
    def embedded(self) -> bool:
        """Whether the service runs on the embedded default (no database URL configured)."""
        return self.database_url is None

    @property
    def resolved_database_url(self) -> str:
        """The database URL, falling back to the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'interactions.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        """The broker URL, falling back to kombu's filesystem transport."""
        return self.broker_url or "filesystem://localhost/"

    @property
    def broker_folder(self) -> Path:
        """Where the filesystem transport keeps its messages."""
        return (self.var_dir / "broker").resolve()

    @property
    def resolved_archive_url(self) -> str:
        """Where archived interactions go: as configured, else a directory under var_dir."""
        return self.archive_url or str((self.var_dir / "archive").resolve())


class UnknownSetting(ValueError):
    """An ``INTERACTIONS_*`` variable that names no setting: a misspelling would be ignored."""


def variable_of(field_name: str) -> str:
    """The environment variable a field of Settings is read from."""
    alias = Settings.model_fields[field_name].validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field_name.upper()


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One sentence per ``INTERACTIONS_*`` name in ``environ`` that no setting reads."""
    known = {variable_of(name) for name in Settings.model_fields} | NAMES_READ_ELSEWHERE
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        closest = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {closest[0]}?" if closest else ""
        problems.append(f"{name} is not a setting and would be ignored{hint}")
    return problems


def load_settings() -> Settings:
    """Settings from the environment and the secrets folder; unknown names fail in production."""
    folder = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR") or None
    settings = Settings(_secrets_dir=folder)
    problems = unknown_variables(os.environ)
    if problems and settings.environment == "production":
        raise UnknownSetting("; ".join(problems))
    for problem in problems:
        log.warning(problem)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return load_settings()
