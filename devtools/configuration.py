"""docs/configuration.md, generated from Settings: ``python -m devtools.configuration``."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import SecretStr

from config.settings import Settings, variable_of
from devtools.processes import ROOT

DOCUMENT = ROOT / "docs" / "configuration.md"

# One line per setting; a field's own description= is used when it has one.
HELP: dict[str, str] = {
    "environment": "development, test or production; production refuses embedded defaults, "
    "development keys and unknown INTERACTIONS_* names.",
    "var_dir": "Where the embedded SQLite file, the filesystem broker, development keys and the "
    "default archive live.",
    "secrets_dir": "A folder of files named after settings (Docker/Kubernetes secrets); a "
    "variable in the environment wins over its file.",
    "database_pool_size": "Connections each process keeps pooled.",
    "database_statement_timeout_ms": "PostgreSQL statement timeout per connection (0: none).",
    "claim_lease_seconds": "How long a dispatch claim is held before reconciliation may settle "
    "it; must exceed the task time limit.",
    "task_time_limit_seconds": "Hard time limit of a dispatch task.",
    "broker_visibility_timeout_seconds": "Redis visibility timeout; must exceed the task time "
    "limit plus the longest retry back-off.",
    "dispatch_max_retries": "Retries of a transient provider failure before the message is FAILED.",
    "retry_backoff_base_seconds": "First retry delay; doubles per retry, with jitter.",
    "retry_backoff_max_seconds": "Longest retry delay.",
    "worker_concurrency": "Threads per worker process.",
    "worker_prefetch_multiplier": "Messages each worker thread reserves ahead.",
    "batch_chunk_size": "Recipients a batch producer writes and publishes per chunk.",
    "reconcile_batch_size": "Expired claims one reconciliation pass settles.",
    "released_claim_grace_seconds": "How long a released claim waits for its retry before it is "
    "enqueued again; unset: the longest back-off plus a minute.",
    "max_payload_bytes": "Largest personalisation payload, JSON-encoded.",
    "max_note_chars": "Longest note add_note accepts.",
    "default_phone_region": "Region a phone number without +code is read in (ISO 3166 code).",
    "history_max_limit": "Largest page get_history and sent-to return.",
    "email_provider": "Who sends email: notify, smtp or log (log only records).",
    "sms_provider": "Who sends SMS: notify or log.",
    "provider_timeout_seconds": "Read timeout of a provider call.",
    "provider_connect_timeout_seconds": "Connect timeout of a provider call.",
    "provider_pool_size": "HTTP connections kept per provider.",
    "pace_horizon_seconds": "How far ahead a worker thread may book a provider slot and sleep "
    "for it; longer waits go back with a countdown.",
    "pace_park_after_seconds": "Waits longer than this (a daily limit, a refused key) park the "
    "message in Redis.",
    "breaker_failures": "Provider failures within the window that open its breaker.",
    "breaker_window_seconds": "The window the breaker counts failures in.",
    "breaker_cooldown_seconds": "How long an open breaker waits before a trial send.",
    "notify_base_url": "GOV.UK/GC Notify API base URL (https://api.notification.canada.ca).",
    "notify_api_key": "Notify API key (name-<service id>-<secret>); secret.",
    "notify_templates": 'Template key -> Notify template id, JSON: {"welcome": "f33517ff-..."}.',
    "notify_rate_per_minute": "The key's limit: GOV.UK Notify 3,000 a minute, GC Notify 1,000.",
    "notify_daily_reset": "Time of day Notify's daily limits reset (HH:MM).",
    "notify_daily_reset_timezone": "Time zone of notify_daily_reset.",
    "smtp_host": "SMTP server host.",
    "smtp_port": "SMTP server port.",
    "smtp_security": "none, starttls or ssl.",
    "smtp_username": "SMTP user name, when the server asks for one.",
    "smtp_password": "SMTP password; secret.",
    "smtp_sender": "The From address of email sent over SMTP.",
    "smtp_list_unsubscribe_url": "When set, SMTP email carries List-Unsubscribe and "
    "List-Unsubscribe-Post (one-click) headers pointing here.",
    "notify_sender_identity": "Per template key, Notify's email_reply_to_id, sms_sender_id and "
    "one_click_unsubscribe_url, as JSON.",
    "suppression_days": "How long a hard-bounced address stays suppressed for its channel.",
    "api_max_body_bytes": "Largest JSON body the HTTP API reads (batch uploads stream apart).",
    "api_batch_max_rows": "Most rows one batch upload to the HTTP API may carry.",
    "api_rate_limit_requests": "Requests each API client may make per window, counted in Redis.",
    "api_rate_limit_window_seconds": "The window of the API clients' rate limit.",
    "api_jwt_issuer": "Issuer of the OAuth2 client-credentials tokens the API accepts (unset: "
    "API keys only).",
    "api_jwt_audience": "Audience those tokens must name.",
    "api_jwt_jwks_url": "Where the issuer publishes its signing keys (JWKS).",
    "api_jwt_client_claim": "The token claim that names the calling client.",
    "api_jwt_scope_claim": "The token claim that holds its scopes, space-separated.",
    "api_jwt_algorithms": "Signature algorithms the API accepts for those tokens.",
    "smtp_message_id_domain": "Domain of the Message-ID the service gives each email.",
    "smtp_rate_per_minute": "Emails a minute the SMTP server takes.",
    "templates_dir": "Where the SMTP and log providers' templates are.",
    "encryption_keys": 'Data keys by id, JSON of base64 32-byte keys: {"k1": "..."}; secret.',
    "encryption_active_key": "The id of the key new values are sealed with.",
    "blind_index_key": "Key of the blind index that finds addresses without decrypting; secret.",
    "webhook_notify_token_sha256": "JSON list of hex SHA-256 of each bearer token Notify calls "
    "back with.",
    "webhook_signing_secrets": 'JSON list of Standard Webhooks secrets ("whsec_..."); secret.',
    "webhook_max_body_bytes": "Largest callback body accepted.",
    "webhook_timestamp_tolerance_seconds": "How far a signed callback's timestamp may be off.",
    "status_retry_window_seconds": "How long an event for an unknown interaction is retried "
    "before it waits as an orphan.",
    "inbox_drain_batch_size": "Callbacks one drain applies before it queues the next.",
    "poll_after_hours": "Age at which a message with no outcome is polled from the provider.",
    "unknown_after_hours": "Age at which a message with no outcome is marked outcome unknown.",
    "archive_url": "Where the janitor archives: a directory, or s3://bucket/prefix; "
    "var_dir/archive when unset.",
    "archive_s3_endpoint_url": "S3 endpoint for MinIO or a government store; AWS when unset.",
    "archive_s3_region": "S3 region.",
    "archive_hot_months": "Months interactions stay in the database before the janitor archives "
    "them.",
    "archive_cold_years": "Years an archived month is kept after leaving the database: purged "
    "once older than hot months + cold years.",
    "archive_chunk_rows": "Interactions per id window the janitor moves at a time.",
    "archive_zstd_level": "zstd level of archive files (1 is fastest).",
    "archive_plan_timeout_seconds": "Statement timeout of the read that plans an archive run.",
    "archive_task_time_limit_seconds": "Time limit of the janitor's task.",
    "log_format": "json or text; unset: JSON in production, text elsewhere.",
    "metrics_token_sha256": "JSON list of hex SHA-256 of each bearer token allowed to scrape "
    "/metrics.",
    "prometheus_multiproc_dir": "Folder where every process of one host writes its metrics.",
    "flower_basic_auth": 'JSON list of "user:password" pairs Flower accepts; Flower refuses to '
    "start without; secret.",
    "flower_address": "Address Flower listens on.",
    "flower_port": "Port Flower listens on.",
    "flower_max_tasks": "Tasks Flower keeps in memory.",
    "console_users": "JSON list of local console users (interactions console add-user prints "
    "an entry).",
    "console_secret_key": "Signs console session cookies, 32 characters or more; required; secret.",
    "console_cookie_secure": "Session cookie over HTTPS only; unset: in production only.",
    "console_session_minutes": "A console session ends after this long, however active.",
    "console_idle_minutes": "A console session ends after this long unused.",
    "console_allow_local_users_in_production": "Let local users sign in in production (where "
    "no identity provider exists).",
    "console_sign_in_failures_per_user": "Failed sign-ins per user name before each further "
    "attempt waits.",
    "console_sign_in_failures_per_address": "Failed sign-ins per client address before it is "
    "refused.",
    "console_sign_in_window_minutes": "The window sign-in failures are counted in.",
    "console_sign_in_delay_seconds": "First delay after too many failures; doubles per failure.",
    "console_trusted_proxy_hops": "Reverse proxies whose X-Forwarded-For and -Proto are "
    "believed (0: none).",
    "console_page_size": "Rows per page of the console's timeline.",
    "console_time_zone": "Time zone the console shows times in, with UTC beside them "
    "(an IANA name).",
    "console_oidc_issuer": "OpenID Connect issuer URL staff sign in through (https:// in "
    "production).",
    "console_oidc_client_id": "The console's OIDC client id.",
    "console_oidc_client_secret": "The console's OIDC client secret; secret.",
    "console_oidc_redirect_url": "The console's OIDC callback URL; derived from the request "
    "when unset.",
    "console_oidc_roles_claim": "The id_token claim listing the user's roles.",
    "console_oidc_role_map": "JSON: identity-provider role -> console role (viewer, agent, "
    "resender).",
    "console_oidc_token_auth_method": "client_secret_basic or client_secret_post at the "
    "provider's token endpoint; unset: the first the provider's discovery lists.",
    "console_oidc_metadata_max_age_seconds": "How long the provider's discovery document and "
    "signing keys are kept; an unknown key id reads them again at once.",
}


def help_of(name: str) -> str | None:
    """The one line of help of a setting: its description, else the table above."""
    return Settings.model_fields[name].description or HELP.get(name)


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    value: Any = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    if name == "templates_dir":
        return "config/templates (in the package)"
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def render() -> str:
    """The whole reference: one table row per field of Settings."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `config.settings.Settings` by `python -m devtools.configuration`;",
        "`tests/unit/test_configuration_reference.py` fails when it and the code disagree.",
        "Every setting is an environment variable, or a file of that name in",
        "`INTERACTIONS_SECRETS_DIR`. An `INTERACTIONS_*` name that is no setting fails",
        "start-up in production (the closest valid name is suggested) and warns elsewhere.",
        "",
        "| Variable | Default | What it does |",
        "|---|---|---|",
    ]
    for name in Settings.model_fields:
        text = (help_of(name) or "").replace("|", "\\|")
        lines.append(f"| `{variable_of(name)}` | {_default(name)} | {text} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write docs/configuration.md, or with --check exit 1 when it is out of date."""
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if DOCUMENT.read_text() == render() else 1)
    DOCUMENT.write_text(render())


if __name__ == "__main__":
    main()
