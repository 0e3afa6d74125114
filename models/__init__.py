"""The ledger's tables, enumerations and sessions."""

from models.api_key import ApiKey
from models.archive import ArchiveManifest, ArchiveState, LegalHold
from models.base import Base
from models.batch import Batch, BatchAction, BatchState
from models.contact import Contact
from models.disclosure import StaffDisclosure
from models.enums import ChannelType, EventKind, InteractionStatus
from models.event import InteractionEvent
from models.inbound import InboundEvent, InboundState
from models.interaction import CustomerInteraction
from models.queued import QueuedMessage
from models.sign_in_failure import SignInFailure
from models.staff_session import StaffSession
from models.suppression import Suppression

__all__ = [
    "ApiKey",
    "ArchiveManifest",
    "ArchiveState",
    "Base",
    "Batch",
    "BatchAction",
    "BatchState",
    "ChannelType",
    "Contact",
    "CustomerInteraction",
    "EventKind",
    "InboundEvent",
    "InboundState",
    "InteractionEvent",
    "InteractionStatus",
    "LegalHold",
    "QueuedMessage",
    "SignInFailure",
    "StaffDisclosure",
    "StaffSession",
    "Suppression",
]
