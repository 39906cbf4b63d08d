"""Messages and callback requests taken for employees and teams: stored before the caller is
told so, then delivered by e-mail and SMS with retries (see DESIGN.md and delivery.Sender).
"""

from vaihde.messages.model import (
    CHANNELS,
    CallbackDraft,
    CallbackRecord,
    DeliveryRecord,
    MessageDraft,
    MessageError,
    MessageRecord,
    Outgoing,
    Recipient,
    SendError,
    plan_deliveries,
)

__all__ = [
    "CHANNELS",
    "CallbackDraft",
    "CallbackRecord",
    "DeliveryRecord",
    "MessageDraft",
    "MessageError",
    "MessageRecord",
    "Outgoing",
    "Recipient",
    "SendError",
    "plan_deliveries",
]
