"""Taking an urgent message: the message and its dispatch stored in one transaction (never one
without the other), its plain SMS left out (the urgent SMS with the reply code is the SMS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaihde.company.schema import CompanyConfig
from vaihde.dispatch import store
from vaihde.dispatch.model import escalation_rota
from vaihde.messages import store as messages
from vaihde.messages.model import SMS, MessageDraft, MessageError, MessageRecord

if TYPE_CHECKING:
    from vaihde.api.context import ApiContext


def rota_for(company: CompanyConfig, draft: MessageDraft, wanted: str | None) -> str:
    """The rota the message escalates along; MessageError for a rota the company lacks."""
    if wanted is not None and wanted not in company.oncall:
        raise MessageError([f"rota: no on-call rota {wanted!r}"])
    if wanted is None:
        # The first urgent rule naming a contact, as the operator's card shows them.
        wanted = next((u.contact for u in company.profile.urgent if u.contact), "")
    return escalation_rota(company, draft.recipient, wanted)


async def take_urgent(
    api: ApiContext, draft: MessageDraft, company: CompanyConfig, wanted: str | None
) -> MessageRecord:
    """Store an urgent message and start its dispatch (committed when this returns)."""
    if SMS not in api.message_channels:
        raise MessageError(["urgent: urgent messages are confirmed by SMS, and this service "
                            "has no SMS settings (messages.sms)"])
    rota = rota_for(company, draft, wanted)
    channels = tuple(c for c in api.message_channels if c != SMS)
    async with api.sessions.begin() as session:
        message = await messages.create_message(
            session, draft, company, channels=channels,
            company_language=company.company.language, now=api.clock())
        await store.start_dispatch(session, message, company, rota=rota, company_key=company.id,
                                   now=api.clock())
    return message
