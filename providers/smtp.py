"""The SMTP email provider: renders a template, guards headers, sends on a per-thread session."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import threading
import weakref
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Literal

import idna
from pydantic import SecretStr

from config.settings import Settings
from models.enums import ChannelType
from providers.base import (
    AmbiguousProviderError,
    KeyRefused,
    OutboundMessage,
    PermanentProviderError,
    Provider,
    ProviderError,
    RecipientRefused,
    SendReceipt,
    TemplateProblem,
    TransientProviderError,
)
from providers.pacing import Credential
from providers.templates import RenderedEmail, TemplateError, TemplateStore

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "ssl"]

# CR and LF end a header; the other C0/C1 controls and Unicode line breaks have no place in one.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*$")
_ENHANCED_STATUS = re.compile(rb"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_RECIPIENT_ACCEPTED = (250, 251)
# Enhanced statuses that blame the mailbox or address (RFC 3463 X.1.x, X.2.x), not the content.
_ADDRESS_STATUSES = ("5.1.", "5.2.")
# RFC 8058: the body a mail client posts to unsubscribe in one click.
ONE_CLICK = "List-Unsubscribe=One-Click"
# A reused session that fails its first command with one of these was dropped while idle.
_STALE_CODES = (None, 421)


class SmtpProvider(Provider):
    """Sends email through an SMTP relay; it cannot be asked about a message afterwards."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        security: Security,
        username: str | None,
        password: SecretStr | str | None,
        sender: str,
        message_id_domain: str,
        timeout: float,
        templates: TemplateStore,
        per_minute: int = 600,
        list_unsubscribe_url: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._security = security
        self._username = username
        self._password = SecretStr(password) if isinstance(password, str) else password
        self._sender = sender
        self._envelope_sender = _envelope_address(sender)
        self._domain = _checked_domain(message_id_domain)
        self._timeout = timeout
        self._templates = templates
        self._unsubscribe = _checked_unsubscribe_url(list_unsubscribe_url)
        self._tls = ssl.create_default_context() if security != "none" else None
        self._local = threading.local()
        self._sessions: weakref.WeakSet[smtplib.SMTP] = weakref.WeakSet()
        self._sessions_lock = threading.Lock()
        self.credential = Credential.of(self.name, f"{host}:{port}:{username or ''}", per_minute)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpProvider:
        """The provider the ``INTERACTIONS_SMTP_*`` settings describe."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_sender,
            message_id_domain=settings.smtp_message_id_domain,
            timeout=settings.provider_timeout_seconds,
            templates=TemplateStore(Path(settings.templates_dir)),
            per_minute=settings.smtp_rate_per_minute,
            list_unsubscribe_url=settings.smtp_list_unsubscribe_url,
        )

    def check_template(self, template_key: str, channel: ChannelType, fields: set[str]) -> None:
        """The template file must exist and compile, and ``fields`` cover its placeholders."""
        try:
            needed = self._templates.placeholders(template_key, channel.value)
        except TemplateError as exc:
            raise TemplateProblem(str(exc)) from None
        missing = sorted(needed - fields)
        if missing:
            raise TemplateProblem(
                f"template {template_key!r} needs {', '.join(missing)}, "
                "which the recipients' columns do not give"
            )

    def send(self, message: OutboundMessage) -> SendReceipt:
        """Render and send one email; its Message-ID carries the interaction's UUID."""
        if message.channel is not ChannelType.EMAIL:
            raise PermanentProviderError(f"smtp delivers email only, not {message.channel.value}")
        rendered = self._render(message)
        _refuse_control_characters("recipient", message.recipient)
        recipient = _ascii_recipient(message.recipient)
        message_id = f"<{message.interaction_uuid}@{self._domain}>"
        data = self._compose(message, rendered, message_id, recipient)
        self._deliver(recipient, data)
        return SendReceipt(
            provider=self.name,
            provider_reference=message_id,
            body=rendered.body,
            subject=rendered.subject,
        )

    def close(self) -> None:
        """Close every open session, for shutdown; a later send opens a new one."""
        with self._sessions_lock:
            sessions = list(self._sessions)
            self._sessions.clear()
        for session in sessions:
            _quit(session)
        self._local.session = None

    def _render(self, message: OutboundMessage) -> RenderedEmail:
        try:
            return self._templates.render_email(message.template_key, message.payload)
        except TemplateError as exc:
            raise PermanentProviderError(f"template error: {exc}") from None

    def _compose(
        self, message: OutboundMessage, rendered: RenderedEmail, message_id: str, recipient: str
    ) -> bytes:
        """The message on the wire; refused before any connection if a header would be forged."""
        _refuse_control_characters("subject", rendered.subject)
        mail = EmailMessage(policy=policy.SMTP)
        mail["To"] = _single_address(recipient)
        try:
            mail["From"] = self._sender
            mail["Subject"] = rendered.subject
            mail["Date"] = formatdate(usegmt=True)
            mail["Message-ID"] = message_id
            mail["X-Interaction-Reference"] = message.reference
            if self._unsubscribe is not None:
                mail["List-Unsubscribe"] = f"<{self._unsubscribe}>"
                mail["List-Unsubscribe-Post"] = ONE_CLICK
            mail.set_content(rendered.body)
            return mail.as_bytes()
        except (ValueError, TypeError) as exc:
            # The library's message can quote the header or body it choked on.
            raise PermanentProviderError(
                f"message could not be composed ({type(exc).__name__})"
            ) from None

    def _deliver(self, recipient: str, data: bytes) -> None:
        """Open the envelope on a live session, then hand over the message."""
        session = self._open_envelope(recipient)
        try:
            code, reply = session.data(data)
        except smtplib.SMTPDataError as exc:
            self._discard(session)
            raise _refusal("DATA", exc.smtp_code, exc.smtp_error) from None
        except OSError as exc:
            # The message may be queued already: retrying could send it twice.
            self._discard(session)
            raise AmbiguousProviderError(
                f"smtp session lost during DATA ({type(exc).__name__}); "
                "the server may have accepted the message"
            ) from None
        if code != 250:
            self._discard(session)
            raise _refusal("end of data", code, reply)

    def _open_envelope(self, recipient: str) -> smtplib.SMTP:
        """A session on which MAIL FROM and RCPT TO were accepted, reconnecting once if stale."""
        session, reused = self._session()
        try:
            self._mail_and_rcpt(session, recipient)
            return session
        except ProviderError as exc:
            self._discard(session)
            if not (reused and exc.transient and exc.status_code in _STALE_CODES):
                raise
        log.info("smtp session was dropped while idle; reconnecting")
        session, _ = self._session()
        try:
            self._mail_and_rcpt(session, recipient)
        except ProviderError:
            self._discard(session)
            raise
        return session

    def _mail_and_rcpt(self, session: smtplib.SMTP, recipient: str) -> None:
        """Start the envelope; nothing of the message has left yet, so failures are safe."""
        try:
            code, reply = session.mail(self._envelope_sender)
            if code != 250:
                raise _refusal("MAIL FROM", code, reply)
            code, reply = session.rcpt(recipient)
            if code not in _RECIPIENT_ACCEPTED:
                raise _refusal("RCPT TO", code, reply)
        except OSError as exc:
            raise TransientProviderError(
                f"smtp session lost before DATA ({type(exc).__name__})"
            ) from None

    def _session(self) -> tuple[smtplib.SMTP, bool]:
        """This thread's session, and whether it was opened for an earlier message."""
        session: smtplib.SMTP | None = getattr(self._local, "session", None)
        if session is not None:
            return session, True
        session = self._connect()
        if session.sock is not None:
            # The session dies with its thread's locals; close its socket then, not leak it.
            weakref.finalize(session, session.sock.close)
        self._local.session = session
        with self._sessions_lock:
            self._sessions.add(session)
        return session, False

    def _connect(self) -> smtplib.SMTP:
        try:
            session = self._open_socket()
        except smtplib.SMTPResponseException as exc:
            raise _unavailable(f"server answered {exc.smtp_code}", exc.smtp_code) from None
        except OSError as exc:
            raise _unavailable(type(exc).__name__, None) from None
        try:
            self._greet(session)
        except smtplib.SMTPAuthenticationError as exc:
            session.close()
            raise KeyRefused(
                f"smtp server refused our login ({exc.smtp_code}); check the username and password",
                status_code=exc.smtp_code,
            ) from None
        except smtplib.SMTPResponseException as exc:
            session.close()
            raise _unavailable(f"server answered {exc.smtp_code}", exc.smtp_code) from None
        except OSError as exc:
            session.close()
            raise _unavailable(type(exc).__name__, None) from None
        return session

    def _open_socket(self) -> smtplib.SMTP:
        if self._security == "ssl":
            return smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=self._tls
            )
        return smtplib.SMTP(self._host, self._port, timeout=self._timeout)

    def _greet(self, session: smtplib.SMTP) -> None:
        """EHLO, STARTTLS when asked for, and login when a username is set."""
        session.ehlo()
        if self._security == "starttls":
            session.starttls(context=self._tls)
            session.ehlo()
        if self._username:
            secret = self._password.get_secret_value() if self._password else ""
            session.login(self._username, secret)

    def _discard(self, session: smtplib.SMTP) -> None:
        """Forget a session whose state is unknown after an error; the next send reconnects."""
        if getattr(self._local, "session", None) is session:
            self._local.session = None
        with self._sessions_lock:
            self._sessions.discard(session)
        session.close()


def _refusal(stage: str, code: int, reply: bytes | str) -> ProviderError:
    """The error for an SMTP reply; the server's text is left out, as it can quote the address."""
    enhanced = _enhanced_status(reply)
    reason = f"smtp server answered {code}{enhanced} to {stage}"
    if 400 <= code < 500:
        return TransientProviderError(reason, status_code=code)
    if 500 <= code < 600 and _hard_bounce(stage, enhanced):
        return RecipientRefused(reason, status_code=code)
    if 500 <= code < 600:
        return PermanentProviderError(reason, status_code=code)
    return TransientProviderError(f"smtp server gave an unexpected reply to {stage}")


def _hard_bounce(stage: str, enhanced: str) -> bool:
    """Whether a 5xx refuses the address itself: any at RCPT TO, or one naming the mailbox."""
    return stage == "RCPT TO" or enhanced.strip().startswith(_ADDRESS_STATUSES)


def _checked_unsubscribe_url(url: str | None) -> str | None:
    """The List-Unsubscribe URL, refused if it could break out of its header."""
    if url is None:
        return None
    if _CONTROL.search(url) or not url.startswith(("https://", "http://")) or ">" in url:
        raise ValueError("smtp list_unsubscribe_url must be a plain http(s) URL")
    return url


def _unavailable(detail: str, code: int | None) -> TransientProviderError:
    return TransientProviderError(f"smtp session could not be opened ({detail})", status_code=code)


def _enhanced_status(reply: bytes | str) -> str:
    """The RFC 3463 status (``5.1.1``) the reply starts with, if any: it holds no address."""
    raw = reply.encode("utf-8", "replace") if isinstance(reply, str) else reply
    found = _ENHANCED_STATUS.match(raw)
    return f" {found.group(1).decode()}" if found else ""


def _refuse_control_characters(header: str, value: str) -> None:
    if _CONTROL.search(value):
        raise PermanentProviderError(
            f"header injection refused: the {header} contains control characters"
        )


def _single_address(recipient: str) -> Address:
    """The recipient as exactly one plain ASCII address, so the To header cannot carry more."""
    try:
        return Address(addr_spec=recipient)
    except (ValueError, IndexError):
        # The parser's message quotes the address: keep it out of the stored reason.
        raise PermanentProviderError(
            "recipient is not a single ASCII email address this provider can send to"
        ) from None


def _ascii_recipient(recipient: str) -> str:
    """The recipient with its domain in IDNA form, which plain (non-SMTPUTF8) SMTP needs."""
    local, at, domain = recipient.rpartition("@")
    if not at or domain.isascii():
        return recipient
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except UnicodeError:
        raise PermanentProviderError("recipient domain cannot be written in IDNA form") from None


def _envelope_address(sender: str) -> str:
    """The bare address of the configured sender, which may carry a display name."""
    address = parseaddr(sender)[1]
    if _CONTROL.search(sender) or "@" not in address:
        raise ValueError("smtp sender must be an email address, optionally with a display name")
    return address


def _checked_domain(domain: str) -> str:
    if not _DOMAIN.match(domain):
        raise ValueError("smtp message_id_domain must be a plain domain name")
    return domain


def _quit(session: smtplib.SMTP) -> None:
    """Say goodbye politely at shutdown; a session that is already gone is just closed."""
    try:
        session.quit()
    except (OSError, smtplib.SMTPException):
        session.close()
