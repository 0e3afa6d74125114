"""The service layer: business rules over the ledger, with no knowledge of Celery."""

from services.communication import CommunicationService
from services.errors import InvalidInput, InvalidRecipient, TransientDispatchError
from services.records import DispatchOutcome, DispatchResult, HistoryPage, InteractionRecord
from services.transitions import Outcome

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
