"""The API's accepted message as one PostgreSQL statement, compiled once per process.

``writes.accept`` built with the ORM per call cost the API process more CPU than anything
else a ``POST /v1/messages`` does: two statements assembled, keyed and compiled each time.
As prepared text with typed parameters it is one round trip, and the parameters take the
column types, so sealing, enums and JSON apply exactly as in any other write.
"""

from __future__ import annotations

import sqlalchemy as sa

from models.event import InteractionEvent
from models.interaction import CustomerInteraction

_INTERACTIONS = CustomerInteraction.__table__.c
_EVENTS = InteractionEvent.__table__.c

# The interaction PENDING and unclaimed unless its key exists, and its first event.
ACCEPTED = """
WITH accepted AS (
    INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key, channel, status,
        recipient, recipient_hash, template_key, batch_id, meta_data, attempt_count,
        claim_expires_at, created_at, updated_at)
    VALUES (CAST(:interaction_uuid AS uuid), :customer_id, :idempotency_key,
        CAST(:channel AS channel_type), CAST(:status AS interaction_status), :recipient,
        :recipient_hash, :template_key, :batch_id, CAST(:meta_data AS jsonb), 0, NULL,
        :now, :now)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), recorded AS (
    INSERT INTO interaction_events (interaction_id, kind, from_status, to_status, outcome,
        source, actor, occurred_at, recorded_at)
    SELECT id, CAST(:kind AS event_kind), NULL, CAST(:status AS interaction_status), :outcome,
        :source, :actor, :now, :now
    FROM accepted
)
SELECT id FROM accepted
"""

accepted = (
    sa.text(ACCEPTED)
    .bindparams(
        sa.bindparam("channel", type_=_INTERACTIONS.channel.type),
        sa.bindparam("status", type_=_INTERACTIONS.status.type),
        sa.bindparam("recipient", type_=_INTERACTIONS.recipient.type),
        sa.bindparam("meta_data", type_=_INTERACTIONS.meta_data.type),
        sa.bindparam("interaction_uuid", type_=_INTERACTIONS.interaction_uuid.type),
        sa.bindparam("kind", type_=_EVENTS.kind.type),
        sa.bindparam("now", type_=_INTERACTIONS.created_at.type),
    )
    .columns(id=_INTERACTIONS.id.type)
)
