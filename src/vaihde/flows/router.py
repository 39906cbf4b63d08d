"""The FastAGI routes: which flow each AGI script of the dialplan runs (`inbound`: a caller on a
company number; `feature`: an employee's feature code), and what those flows need from the
running service (`CallHost`). A stand-in that meets the same contract runs exactly these handlers
(the FastAGI benchmark's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde import contract
from vaihde.agi.channel import Channel
from vaihde.agi.session import Router
from vaihde.company.dials import Reach
from vaihde.company.schema import CompanyConfig
from vaihde.config.settings import Settings
from vaihde.flows.answering import Answering, Recording
from vaihde.flows.feature_codes import FeatureRequest, feature_call
from vaihde.flows.inbound import Prompts, inbound
from vaihde.presence.cache import PresenceCache
from vaihde.presence.model import Source
from vaihde.presence.store import set_availability
from vaihde.prompts import PromptLibrary
from vaihde.story import CallStory, StoryBook

# The route's Dial() strings as the call's own Asterisk reaches each phone (several Asterisks).
DialAdapter = Callable[[str, str], str]


class DeviceView(Protocol):
    """Phones' reach: one Asterisk's (DeviceStates) or merged over several (MergedDevices)."""

    def reach(self, device: str) -> Reach: ...


class TakesMessages(Protocol):
    """Where a caller's message is recorded, and storing it or a callback request (True once
    committed): vaihde.messages.calls.CallMessages."""

    def recording_for(self, call_id: str) -> Recording: ...
    async def store_message(
        self, story: CallStory, kind: str, target: str, recording_path: str | None
    ) -> bool: ...
    async def store_callback(self, story: CallStory, kind: str, target: str) -> bool: ...


class SetsAvailability(Protocol):
    """An employee's own availability from their phone (a feature code)."""

    async def __call__(self, employee_id: str, request: FeatureRequest, device: str) -> None: ...


class SpeaksPrompts(Protocol):
    """A company's prompts (vaihde.prompts.PromptLibrary)."""

    @property
    def prompts(self) -> Prompts: ...
    async def text(self, text: str, language: str, *,
                   deadline: float | None = None) -> str | None: ...


class CallCompany(Protocol):
    """The company a call belongs to, as its handler uses it (vaihde.company.live.Tenant)."""

    @property
    def config(self) -> CompanyConfig: ...
    @property
    def prompts(self) -> SpeaksPrompts: ...
    @property
    def greetings(self) -> Mapping[str, str]: ...


class CallHost(Protocol):
    """What the call handlers use of the service."""

    settings: Settings
    stories: StoryBook
    prompts: PromptLibrary
    devices: DeviceView

    @property
    def company(self) -> CompanyConfig: ...
    @property
    def presence(self) -> PresenceCache: ...
    @property
    def greetings(self) -> Mapping[str, str]: ...
    @property
    def messages(self) -> TakesMessages: ...
    @property
    def set_from_phone(self) -> SetsAvailability: ...
    def dial_adapter(self, uniqueid: str) -> DialAdapter | None: ...
    def for_call(self, dialled: str, forwarded_from: str) -> CallCompany:
        """The company whose number was dialled, or whose employee forwarded the call."""
        ...
    def company_by_device(self, device: str) -> CompanyConfig | None:
        """The company whose employee's desk phone or softphone `device` is (any company)."""
        ...


def phone_setter(
    sessions: async_sessionmaker[AsyncSession], presence: PresenceCache
) -> SetsAvailability:
    """Feature codes store the employee's availability (source: phone) and show it at once."""

    async def set_from_phone(employee_id: str, request: FeatureRequest, device: str) -> None:
        async with sessions() as session, session.begin():
            await set_availability(
                session, employee_id, request.state, source=Source.PHONE,
                set_by=f"phone {device}"[:80], until=request.until,
            )
        await presence.invalidate(employee_id)

    return set_from_phone


def build_router(host: CallHost) -> Router:
    router = Router()

    async def inbound_handler(channel: Channel) -> None:
        channel.adapt = host.dial_adapter(channel.uniqueid)
        # The call's company, read once so that a reload never changes a call half-way. The
        # numbers only look up indexes here; inbound() validates them again for its own use.
        dialled = channel.params.get("did", "")
        company = host.for_call(dialled, channel.params.get("fwd", ""))
        config = company.config
        story = host.stories.open(
            channel.uniqueid, channel.env.callerid, channel.env.calleridname, dialled,
            config.id,
        )
        messages = host.messages

        async def store_message(kind: str, target: str, path: str | None) -> bool:
            return await messages.store_message(story, kind, target, path)

        async def store_callback(kind: str, target: str) -> bool:
            return await messages.store_callback(story, kind, target)

        answering = Answering(
            recording_for=messages.recording_for,
            store_message=store_message,
            store_callback=store_callback,
        )
        await inbound(
            channel, config, mobile_dial=host.settings.mobile_dial,
            lookup=host.presence.lookup, prompts=company.prompts.prompts,
            speak=company.prompts.text, story=story, answering=answering,
            greet_name=company.greetings.get(story.caller_number, ""),
            devices=host.devices.reach,
        )

    async def feature_handler(channel: Channel) -> None:
        await feature_call(channel, host.company_by_device, host.set_from_phone,
                           now=datetime.now(UTC))

    router.add(contract.SCRIPT_INBOUND, inbound_handler)
    router.add(contract.SCRIPT_FEATURE, feature_handler)
    return router


__all__ = ["CallCompany", "CallHost", "DeviceView", "DialAdapter", "TakesMessages", "build_router",
           "phone_setter"]
