"""The text of generated interactions and events, in COPY's text format, one chunk at a time.

Rows come in time order, as the ledger fills in production: 30 months by default, with a
skewed customer distribution (customer k is drawn with probability about 1/(2*sqrt(k*C)), so a
few customers hold thousands of interactions and the median one a handful), every channel and
status, batch sends for most email and SMS, and the events the dispatch and callback paths
append. Sealed columns hold real AES-GCM ciphertext from a small pool sealed once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.crypto import KeyRing

INTERACTION_COLUMNS = (
    "id, interaction_uuid, customer_id, idempotency_key, channel, status, body_content, "
    "notify_reference, provider_reference, provider, meta_data, recipient, recipient_hash, "
    "template_key, batch_id, author, attempt_count, claim_expires_at, failure_reason, "
    "created_at, updated_at, sent_at, delivered_at, opened_at, failed_at, outcome_unknown_at"
)
EVENT_COLUMNS = (
    "id, interaction_id, kind, from_status, to_status, outcome, source, actor, attempt, "
    "provider, provider_event_id, reference, detail, occurred_at, recorded_at"
)
# Event ids are the interaction's id times this plus the event's place: no coordination needed.
EVENTS_PER_INTERACTION_MAX = 4
NULL = "\\N"
TEMPLATES = ("welcome", "monthly_statement", "payment_reminder", "renewal_notice", "tax_slip")
POOL_SIZE = 64
DAY = 86400.0


@dataclass(frozen=True)
class SealedPool:
    """Ciphertexts sealed once and reused, so generating stays fast and every value opens."""

    emails: tuple[str, ...]
    phones: tuple[str, ...]
    bodies: tuple[str, ...]
    notes: tuple[str, ...]
    payloads: tuple[str, ...]
    index_key: bytes

    @classmethod
    def seal(cls, ring: KeyRing) -> SealedPool:
        def many(texts: list[str], purpose: str) -> tuple[str, ...]:
            return tuple(ring.seal(text, purpose) for text in texts)

        body = (
            "Hello Resident {n}, your {what} is ready. Sign in to My Account to read it; "
            "the reference to quote if you call us is {n:08d}. This message was sent by the "
            "service automatically, please do not reply to it."
        )
        whats = ("statement", "notice of assessment", "renewal", "receipt")
        purpose = "interactions.meta_data.payload"
        payloads = [
            json.dumps({"payload": {"sealed": ring.seal(json.dumps({"name": f"R {n}"}), purpose)}})
            for n in range(POOL_SIZE)
        ]
        return cls(
            emails=many(
                [f"resident{n}@example.org" for n in range(POOL_SIZE)], "interactions.recipient"
            ),
            phones=many([f"+1613555{n:04d}" for n in range(POOL_SIZE)], "interactions.recipient"),
            bodies=many(
                [body.format(n=n, what=whats[n % 4]) for n in range(POOL_SIZE)],
                "interactions.body_content",
            ),
            notes=many(
                [f"Called about file {n}; explained the next steps." for n in range(POOL_SIZE)],
                "interactions.body_content",
            ),
            payloads=tuple(payloads),
            index_key=ring.index_key,
        )


@dataclass(frozen=True)
class Shape:
    """What to generate: how many interactions, among how many customers, over which period."""

    rows: int
    customers: int
    start: float  # epoch seconds of the first interaction
    end: float  # epoch seconds of the last
    seed: int = 1


@dataclass(frozen=True)
class Chunk:
    """A run of consecutive interactions, cut on batch boundaries so it owns its batches."""

    index: int
    lo: int  # first interaction id
    hi: int  # one past the last
    batch_starts: tuple[int, ...]  # the ids where each of its batches begins


@dataclass
class ChunkText:
    """One chunk in COPY text, with what it holds."""

    interactions: str
    events: str
    event_count: int
    batches: Counter[tuple[str, str, str]] = field(default_factory=Counter)


class Stamps:
    """Timestamps as COPY text; the prefix of each minute is formatted once."""

    def __init__(self) -> None:
        self._minutes: dict[int, str] = {}

    def __call__(self, t: float) -> str:
        minute = int(t // 60)
        prefix = self._minutes.get(minute)
        if prefix is None:
            if len(self._minutes) > 200_000:
                self._minutes.clear()
            prefix = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M:")
            self._minutes[minute] = prefix
        return f"{prefix}{t - minute * 60:09.6f}+00"


def uuid_text(rng: random.Random) -> str:
    """A random version-4 UUID in its usual form."""
    bits = (
        rng.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48) | (0x4000 << 64) | (0x8000 << 48)
    )
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def customer_id(n: int) -> str:
    """The id of the n-th customer (0 is the heaviest)."""
    return f"C-{n:07d}"


def address(channel: str, customer: int) -> str:
    """The normalised address of a customer on ``channel``, as the blind index reads it."""
    return f"c{customer}@example.org" if channel == "email" else f"+1613{4_000_000 + customer:07d}"


def chunk_text(shape: Shape, pool: SealedPool, chunk: Chunk) -> ChunkText:
    """The interactions of ``chunk`` and their events, as COPY text."""
    return _Writer(shape, pool, chunk).run()


@dataclass
class _Message:
    """What is drawn for one dispatched message before it is written out."""

    ident: int
    own: str
    customer: int
    channel: str
    key: str
    template: str
    batch: str | None
    created: float
    status: str = "sent"
    bounced: bool = False


def _status(s: float, recent: bool) -> str:
    """Where a message stands: recent ones may still be on their way."""
    if recent:
        table = (("pending", 0.1), ("sent", 0.4), ("delivered", 0.8), ("opened", 0.9))
    else:
        table = (("sent", 0.08), ("delivered", 0.65), ("opened", 0.9))
    for status, below in table:
        if s < below:
            return status
    return "failed"


class _Writer:
    """Builds one chunk; every draw comes from the chunk's own seeded generator."""

    def __init__(self, shape: Shape, pool: SealedPool, chunk: Chunk) -> None:
        self.shape = shape
        self.pool = pool
        self.chunk = chunk
        self.rng = random.Random(shape.seed * 1_000_003 + chunk.index)
        self.stamp = Stamps()
        self.step = (shape.end - shape.start) / max(1, shape.rows)
        self.lines: list[str] = []
        self.events: list[str] = []
        self.batches: Counter[tuple[str, str, str]] = Counter()
        self.hashes: dict[tuple[str, int], str] = {}

    def run(self) -> ChunkText:
        starts = [*self.chunk.batch_starts, self.chunk.hi]
        for position, lo in enumerate(starts[:-1]):
            members: set[tuple[str, int]] = set()
            for ident in range(lo, starts[position + 1]):
                self.row(ident, lo, members)
        return ChunkText("".join(self.lines), "".join(self.events), len(self.events), self.batches)

    def customer(self) -> int:
        u = self.rng.random()
        return int(self.shape.customers * u * u)

    def recipient_hash(self, channel: str, customer: int) -> str:
        """The blind index of the customer's address, as ``validation.recipient_index`` makes it."""
        digest = self.hashes.get((channel, customer))
        if digest is None:
            text = f"{channel}:{address(channel, customer)}".encode()
            digest = hmac.new(self.pool.index_key, text, hashlib.sha256).hexdigest()
            self.hashes[(channel, customer)] = digest
        return digest

    def row(self, ident: int, batch_start: int, members: set[tuple[str, int]]) -> None:
        rng = self.rng
        created = self.shape.start + (ident - 1 + rng.random()) * self.step
        r = rng.random()
        channel = "email" if r < 0.55 else "sms" if r < 0.88 else "system" if r < 0.94 else "phone"
        customer = self.customer()
        own = uuid_text(rng)
        if channel == "phone":
            self.note(ident, own, customer_id(customer), created)
            return
        batched = channel != "system" and rng.random() < 0.85
        for _ in range(20):  # a batch names each customer once; a small population runs out
            if not batched or (channel, customer) not in members:
                break
            customer = self.customer()
        else:
            batched = False
        if batched:
            members.add((channel, customer))
            template = TEMPLATES[batch_start % len(TEMPLATES)]
            batch: str | None = f"b{batch_start:09d}-{channel}"
            self.batches[(f"b{batch_start:09d}-{channel}", channel, template)] += 1
            key = f"{batch}:{customer_id(customer)}"
        else:
            template, batch, key = TEMPLATES[int(r * 1000) % len(TEMPLATES)], None, f"api:{own}"
        message = _Message(ident, own, customer, channel, key, template, batch, created)
        message.status = _status(rng.random(), self.shape.end - created < DAY)
        if channel == "system" and message.status == "opened":
            message.status = "delivered"
        message.bounced = message.status == "failed" and rng.random() < 0.5
        self.message(message)

    def message(self, m: _Message) -> None:
        """One dispatched message and the events its dispatch and receipts appended."""
        rng, stamp, pool = self.rng, self.stamp, self.pool
        status, channel = m.status, m.channel
        provider = "notify" if channel != "system" else "log"
        recipient = recipient_hash = NULL
        if channel != "system":
            recipient = (pool.emails if channel == "email" else pool.phones)[m.customer % POOL_SIZE]
            recipient_hash = self.recipient_hash(channel, m.customer)
        accepted = status in ("sent", "delivered", "opened") or m.bounced
        reference = uuid_text(rng) if accepted else NULL
        sent = m.created + 0.05 + rng.random() * 0.5
        delivered = sent + 1 + rng.random() * 120
        opened = delivered + rng.random() * 2 * DAY
        failed_at = failure = unknown = NULL
        if status == "failed":
            failed_at = stamp(delivered if m.bounced else sent)
            failure = "reported failed by the provider" if m.bounced else "permanent-failure: 400"
        if status == "sent" and self.shape.end - m.created > 3 * DAY and rng.random() < 0.5:
            unknown = stamp(m.created + 3 * DAY)
        self.lines.append(
            f"{m.ident}\t{m.own}\t{customer_id(m.customer)}\t{m.key}\t{channel}\t{status}\t"
            f"{pool.bodies[m.ident % POOL_SIZE] if accepted else NULL}\t"
            f"{m.own if status != 'pending' else NULL}\t{reference}\t{provider}\t"
            f"{pool.payloads[m.customer % POOL_SIZE]}\t{recipient}\t{recipient_hash}\t"
            f"{m.template}\t{m.batch or NULL}\t{NULL}\t1\t"
            f"{stamp(m.created + 300) if status == 'pending' else NULL}\t{failure}\t"
            f"{stamp(m.created)}\t{stamp(min(opened, self.shape.end))}\t"
            f"{stamp(sent) if accepted else NULL}\t"
            f"{stamp(delivered) if status in ('delivered', 'opened') else NULL}\t"
            f"{stamp(opened) if status == 'opened' else NULL}\t{failed_at}\t{unknown}\n"
        )
        self.dispatch_events(m, provider, sent)
        if channel == "system" or status in ("pending", "sent") or not accepted:
            return
        steps = [("sent", "failed" if m.bounced else "delivered", delivered)]
        if status == "opened":
            steps.append(("delivered", "opened", opened))
        for n, (before, after, when) in enumerate(steps, start=2):
            at = stamp(when)
            raw = "permanent-failure" if after == "failed" else after
            self.events.append(
                f"{m.ident * EVENTS_PER_INTERACTION_MAX + n}\t{m.ident}\tprovider_event\t"
                f"{before}\t{after}\tapplied\tcallback:notify\t{NULL}\t{NULL}\tnotify\t"
                f"{reference}:{raw}\t{reference}\t{NULL}\t{at}\t{at}\n"
            )

    def dispatch_events(self, m: _Message, provider: str, sent: float) -> None:
        """The claim's event, and the record's unless the message is still pending."""
        base = m.ident * EVENTS_PER_INTERACTION_MAX
        at = self.stamp(m.created)
        self.events.append(
            f"{base}\t{m.ident}\tattempt_started\t{NULL}\tpending\t{NULL}\tdispatch\t{NULL}\t"
            f"1\t{NULL}\t{NULL}\t{NULL}\t{NULL}\t{at}\t{at}\n"
        )
        if m.status == "pending":
            return
        first = "failed" if m.status == "failed" and not m.bounced else "sent"
        at = self.stamp(sent)
        self.events.append(
            f"{base + 1}\t{m.ident}\tstatus_changed\tpending\t{first}\tapplied\tdispatch\t"
            f"{NULL}\t1\t{provider}\t{NULL}\t{NULL}\t{NULL}\t{at}\t{at}\n"
        )

    def note(self, ident: int, own: str, cid: str, created: float) -> None:
        """A phone call noted by an agent, as ``add_note`` records it."""
        at = self.stamp(created)
        agent = f"agent.{ident % 97}"
        self.lines.append(
            f"{ident}\t{own}\t{cid}\tnote:{own}\tphone\tdelivered\t"
            f"{self.pool.notes[ident % POOL_SIZE]}\t{NULL}\t{NULL}\t{NULL}\t{NULL}\t{NULL}\t"
            f"{NULL}\t{NULL}\t{NULL}\t{agent}\t0\t{NULL}\t{NULL}\t{at}\t{at}\t{NULL}\t{at}\t"
            f"{NULL}\t{NULL}\t{NULL}\n"
        )
        self.events.append(
            f"{ident * EVENTS_PER_INTERACTION_MAX}\t{ident}\tstaff_action\t{NULL}\tdelivered\t"
            f"note_added\tstaff\t{agent}\t{NULL}\t{NULL}\t{NULL}\t{NULL}\t{NULL}\t{at}\t{at}\n"
        )
