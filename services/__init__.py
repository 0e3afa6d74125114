"""The service layer: business rules over the ledger, with no knowledge of Celery."""

from services.errors import InvalidInput, InvalidRecipient, TransientDispatchError
from services.ledger.transitions import Outcome
from services.records import DispatchOutcome, DispatchResult, HistoryPage, InteractionRecord
from services.sending.communication import CommunicationService

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
]
