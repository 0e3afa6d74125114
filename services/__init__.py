"""The service layer: business rules over the ledger, with no knowledge of Celery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.errors import InvalidInput, InvalidRecipient, TransientDispatchError
from services.ledger.transitions import Outcome
from services.records import DispatchOutcome, DispatchResult, HistoryPage, InteractionRecord
from services.sending.communication import CommunicationService

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "CommunicationService",
    "DispatchOutcome",
    "DispatchResult",
    "HistoryPage",
    "InteractionRecord",
    "InvalidInput",
    "InvalidRecipient",
    "Outcome",
    "TransientDispatchError",
    "connect",
]


def connect(settings: Settings | None = None, *, check_schema: bool = True) -> CommunicationService:
    """The RFC's operations in this process, on the configured database and providers.

    Without ``settings`` it reads ``INTERACTIONS_*`` and shares the process's container (the
    one the command line and the workers use). It raises models.migrate.SchemaBehind, naming
    the command to run, when the database is behind the code.
    """
    # The composition root pulls in Celery and Redis; importing a record type should not.
    from models.migrate import ensure_migrated  # noqa: PLC0415 - Alembic only when connecting
    from services.container import Container, container  # noqa: PLC0415 - see above

    here = container() if settings is None else Container(settings)
    if check_schema:
        ensure_migrated(here.engine)
    return here.communication
