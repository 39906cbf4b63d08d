"""The running service: FastAGI for call decisions, AMI for call state, HTTP for health, and the
database that holds the company and everyone's availability.

The company configuration is read from the database and swapped in when someone applies a new
version (`vaihde config apply`, the admin pages): each call reads it once when it starts, so a
change never alters a call half-way. Changing the settings file (addresses, database) needs a
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vaihde import contract, systemd
from vaihde.agi.channel import Channel
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router
from vaihde.ami import AmiClient, CallTracker
from vaihde.ami.cluster import Cluster, Link, rewrite
from vaihde.ami.devicestate import DeviceStates
from vaihde.ami.queues import QueueMembers
from vaihde.api import ApiContext, LiveDirectory, make_api
from vaihde.calendar.importer import CalendarScheduler
from vaihde.company import CompanyConfig, load_company
from vaihde.company.apply import apply_company, current_company
from vaihde.company.dials import Reach, devices_of
from vaihde.company.offloop import ConfigChecker
from vaihde.config import settings as settings_mod
from vaihde.console.actions import Limits
from vaihde.console.stream import Console, ConsoleDeps
from vaihde.db.engine import Database, open_database
from vaihde.db.migrate import upgrade_async
from vaihde.db.models import CALLERS, CONFIG, Caller, current_revisions
from vaihde.directory.store import add_contact
from vaihde.flows.answering import Answering, Recording
from vaihde.flows.feature_codes import FeatureRequest, feature_call
from vaihde.flows.inbound import inbound
from vaihde.guard.__main__ import GuardSettings
from vaihde.guard.child import GuardChild
from vaihde.http.health import make_app
from vaihde.http.server import GuardedServer
from vaihde.jobs import cancel_all
from vaihde.messages.delivery import Sender, transports_from_settings
from vaihde.messages.model import CallbackDraft, MessageDraft, Recipient
from vaihde.messages.store import take_callback, take_message
from vaihde.presence.cache import PresenceCache
from vaihde.presence.model import Source
from vaihde.presence.store import set_availability
from vaihde.prompts import PromptLibrary
from vaihde.records import as_json
from vaihde.story import CallStory, StoryBook, describe_path
from vaihde.web import add_web

log = logging.getLogger("vaihde.service")

# How often the service looks for changes made by other processes (CLI, other instances).
POLL_INTERVAL_S = 1.0
# How often it looks for availability changed by other processes (the CLI): often, because a
# change must reach the team queues (QueuePause) within a second, even on a busy machine. One
# small query each time (about 0.6 ms of CPU on SQLite: 0.6 % of a core).
PRESENCE_POLL_S = 0.1


class NoCompany(RuntimeError):
    """The database holds no company and no company file was given to start from."""


class DeviceView(Protocol):
    """Phones' reach: one Asterisk's (DeviceStates) or merged over several (MergedDevices)."""

    def reach(self, device: str) -> Reach: ...


class CallHost(Protocol):
    """What the call handlers use of the service: the contract a stand-in (the FastAGI
    benchmark's) must meet to run exactly the production handlers."""

    settings: settings_mod.Settings
    stories: StoryBook
    greetings: dict[str, str]
    prompts: PromptLibrary
    db: Database | None
    devices: DeviceView

    @property
    def company(self) -> CompanyConfig: ...
    @property
    def presence(self) -> PresenceCache: ...
    def recording_for(self, call_id: str) -> Recording: ...
    async def store_message(
        self, story: CallStory, kind: str, target: str, recording_path: str | None
    ) -> bool: ...
    async def store_callback(self, story: CallStory, kind: str, target: str) -> bool: ...


def build_router(service: CallHost) -> Router:
    router = Router()

    # Several Asterisks: the call's Dial() strings as its own Asterisk reaches each phone.
    dial_adapter = getattr(service, "dial_adapter", None)

    async def inbound_handler(channel: Channel) -> None:
        if dial_adapter is not None:
            channel.adapt = dial_adapter(channel.uniqueid)
        # Read the company once per call so a reload never changes a call half-way.
        story = service.stories.open(
            channel.uniqueid, channel.env.callerid, channel.env.calleridname,
            channel.params.get("did", ""),
        )
        answering = Answering(
            recording_for=service.recording_for,
            store_message=lambda kind, target, path: service.store_message(
                story, kind, target, path
            ),
            store_callback=lambda kind, target: service.store_callback(story, kind, target),
        )
        await inbound(
            channel, service.company, mobile_dial=service.settings.mobile_dial,
            lookup=service.presence.lookup, prompts=service.prompts.prompts,
            speak=service.prompts.text, story=story, answering=answering,
            greet_name=service.greetings.get(story.caller_number, ""),
            devices=service.devices.reach,
        )

    async def feature_handler(channel: Channel) -> None:
        async def set_from_phone(employee_id: str, request: FeatureRequest, device: str) -> None:
            assert service.db is not None
            async with service.db.sessions() as session, session.begin():
                await set_availability(
                    session, employee_id, request.state, source=Source.PHONE,
                    set_by=f"phone {device}"[:80], until=request.until,
                )
            await service.presence.invalidate(employee_id)

        await feature_call(channel, service.company, set_from_phone, now=datetime.now(UTC))

    router.add(contract.SCRIPT_INBOUND, inbound_handler)
    router.add(contract.SCRIPT_FEATURE, feature_handler)
    return router


class Service:
    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        self.router = build_router(self)
        fastagi = settings.fastagi
        self.agi = FastAgiServer(self.router, fastagi.host, fastagi.port,
                                 allow=fastagi.allow, secret=fastagi.secret)
        self.stories = StoryBook(on_finished=self._story_finished)
        # One AMI link per Asterisk, each with its own call tracker, phones' states and team
        # queues (vaihde.ami.cluster); with one Asterisk, exactly the objects of before.
        self.links: list[Link] = [
            Link(ast, AmiClient(ast.host, ast.port, ast.username, ast.secret), CallTracker(),
                 DeviceStates(watch=self._watched_devices))
            for ast in settings.all_asterisks()
        ]
        self.cluster = Cluster(self.links)  # its systemname check is each login's first hook
        for link in self.links:
            link.tracker.attach(link.client)
            link.devices.attach(link.client)
            link.queues = QueueMembers(
                link.client, lambda: self._company, lambda eid: self.presence.lookup(eid),
                settings.mobile_dial,
                via=self.cluster.dial_from(link) if self.cluster.several else None,
            )
            link.queues.attach()
            link.client.add_event_listener(self.stories.apply)
        first = self.links[0]
        # The first (or only) Asterisk's, as before: tests and benchmarks read these.
        self.ami, self.tracker, self.queues = first.client, first.tracker, first.queues
        self.calls = self.cluster.calls  # every Asterisk's calls
        self.devices = self.cluster.devices
        self.devices.add_listener(self._device_changed)
        self.devices.add_reach_listener(self._device_reach_changed)
        if self.cluster.merged is not None:
            self.cluster.merged.add_route_listener(self._device_moved)
        self._queues_resync: asyncio.Task[None] | None = None
        self._moved = False
        self.db: Database | None = None
        self._presence: PresenceCache | None = None
        self.calendars: CalendarScheduler | None = None
        self.sender: Sender | None = None
        self.directory: LiveDirectory | None = None
        self.console: Console | None = None
        self.prompts = PromptLibrary(
            settings.prompts_dir, settings.prompts_asterisk_dir or None,
            default_language="fi",
        )
        self._company: CompanyConfig | None = None
        self.company_version = 0
        self._revisions: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        # Known callers who agreed to be greeted by name: number → first name. Kept in memory
        # (refreshed when the caller registry changes) so no call waits on the database.
        self.greetings: dict[str, str] = {}
        self._http: GuardedServer | None = None
        self.http_port = settings.http.port
        # The guard takes callers out of AGI sessions this process stopped answering (SIGSTOP, a
        # blocked loop); it must live in a process of its own to do that. One per Asterisk: each
        # follows the AGI sessions in its own Asterisk's events.
        self.guards: list[GuardChild] = []
        if settings.guard_mode == "child":
            self.guards = [
                GuardChild(GuardSettings(
                    link.settings.host, link.settings.port, link.settings.username,
                    link.settings.secret, settings.guard_stall_s, settings.log_format,
                    settings.guard_agi_url,
                ))
                for link in self.links
            ]
        self.guard: GuardChild | None = self.guards[0] if self.guards else None

    @property
    def company(self) -> CompanyConfig:
        if self._company is None:
            raise NoCompany("no company configuration loaded")
        return self._company

    @property
    def presence(self) -> PresenceCache:
        if self._presence is None:
            raise RuntimeError("presence cache not loaded yet")
        return self._presence

    def _device_changed(self, device: str, in_use: bool) -> None:
        """A phone went into or out of a call: its owner is "on a call" while any is in use."""
        if self._presence is None or self._company is None:
            return
        employee = self._company.employee_by_device(device)
        if employee is not None:
            busy = any(
                self.devices.in_use.get(d.address, False)
                for d in employee.devices
                if d.kind != "mobile"
            )
            self._presence.set_on_call(employee.id, busy)

    def _device_moved(self, device: str) -> None:
        """A phone is now reached another way from some Asterisk (it registered on another
        one): the team queues' members follow, once the burst is over."""
        self._moved = True
        if self._queues_resync is not None and not self._queues_resync.done():
            return

        async def run() -> None:
            while self._moved:
                await asyncio.sleep(0.5)
                self._moved = False  # a move during the sync below syncs once more
                await self._sync_links(look=False)

        self._queues_resync = asyncio.get_running_loop().create_task(
            run(), name="vaihde-queues-moved")
        self._background.add(self._queues_resync)
        self._queues_resync.add_done_callback(self._background.discard)

    def dial_adapter(self, uniqueid: str) -> Callable[[str, str], str] | None:
        """For a caller's AGI session: the route's Dial() strings (VAIHDE_DIAL, VAIHDE_DIAL2…)
        as the call's own Asterisk reaches each phone (None with one Asterisk: as they are)."""
        if not self.cluster.several:
            return None
        link = self.cluster.link_of_call(uniqueid)
        if link is None:
            return None
        via = self.cluster.dial_from(link)

        def adapt(name: str, value: str) -> str:
            step = name[len(contract.DIAL):]
            if name.startswith(contract.DIAL) and (not step or step.isdigit()):
                return rewrite(value, via)
            return value

        return adapt

    def _watched_devices(self) -> list[str]:
        """The configured desk phones and softphones: their state is read at every AMI login."""
        return list(devices_of(self._company)) if self._company is not None else []

    def _device_reach_changed(self, device: str, reach: object) -> None:
        """A phone became reachable, unreachable or busy: the consoles show it at once."""
        if self._company is None or self.console is None or self._presence is None:
            return
        employee = self._company.employee_by_device(device)
        if employee is not None:
            self.console.publish_availability(self._presence.lookup(employee.id))

    def device_json(self, employee_id: str) -> list[dict[str, str]]:
        """Each of an employee's phones and whether it can ring now (console, API)."""
        company = self._company
        employee = company.employees.get(employee_id) if company is not None else None
        if employee is None:
            return []
        return [
            {"kind": d.kind, "dial": d.address,
             "reach": self.devices.reach(d.address).value if d.kind != "mobile" else "unknown"}
            for d in employee.devices
        ]

    def _spawn(self, job: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(job, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _story_finished(self, story: CallStory) -> None:
        """The caller hung up: their story joins their contact history (off the AMI reader)."""
        if self.db is None:
            return
        self._spawn(self._save_contact(story), "vaihde-contact")

    async def _save_contact(self, story: CallStory) -> None:
        assert self.db is not None
        try:
            async with self.db.sessions() as session, session.begin():
                await add_contact(
                    session, direction="in",
                    # Withheld or odd caller IDs are still a contact, just without a number.
                    caller_number=story.caller_number if story.caller_number.isdigit() else None,
                    path=story.path or "menu", outcome=story.outcome[:40],
                    employee_id=story.sought_id if story.sought_kind == "employee" else None,
                    call_id=story.call_id, details=story.to_dict(), at=story.started_at,
                )
        except Exception as exc:  # history is worth keeping, but never at a caller's expense
            log.warning("contact not saved", extra={"call_id": story.call_id,
                        "error": repr(exc)})

    def recording_for(self, call_id: str) -> Recording:
        """A message recording's place: under the prompts directory, which both the service
        and Asterisk can reach (each by its own path)."""
        name = "msg-" + "".join(c for c in call_id if c.isalnum() or c in ".-")[:40]
        name += datetime.now(UTC).strftime("-%Y%m%dT%H%M%S")
        return Recording(
            asterisk_path=f"{self.prompts.asterisk_dir.rstrip('/')}/recordings/{name}",
            host_path=str(self.prompts.dir / "recordings" / f"{name}.wav"),
        )

    async def store_message(
        self, story: CallStory, kind: str, target: str, recording_path: str | None
    ) -> bool:
        """Stored and committed before the caller is told so; False if it could not be."""
        assert self.db is not None
        draft = MessageDraft(
            Recipient(kind=kind, id=target), caller_number=story.caller_number or None,
            caller_name=story.caller_name, path=describe_path(story),
            recording_path=recording_path, call_id=story.call_id,
        )
        try:
            await take_message(self.db.sessions, draft, self.company,
                               channels=self.settings.messaging.channels)
        except Exception as exc:  # the caller then reaches a person: say so in the log
            log.error("message not stored", extra={"call_id": story.call_id, "error": repr(exc)})
            return False
        if self.sender is not None:
            self.sender.wake()
        return True

    async def store_callback(self, story: CallStory, kind: str, target: str) -> bool:
        assert self.db is not None
        if not story.caller_number.isdigit():
            return False  # a withheld number cannot be called back: a person helps instead
        draft = CallbackDraft(
            story.caller_number, caller_name=story.caller_name, for_kind=kind, for_id=target,
            call_id=story.call_id,
        )
        try:
            await take_callback(self.db.sessions, draft)
        except Exception as exc:
            log.error("callback not stored", extra={"call_id": story.call_id, "error": repr(exc)})
            return False
        return True

    def _calendar_feeds(self) -> dict[str, str]:
        # As written: the scheduler resolves and checks them against settings.calendar.
        return {e.id: e.calendar for e in self.company.employees.values() if e.calendar}

    def status(self) -> dict[str, Any]:
        connected = all(link.client.connected for link in self.links)
        ami: dict[str, Any] = {"connected": self.ami.connected, "last_error": self.ami.last_error}
        if self.cluster.several:
            ami = {"connected": connected,
                   "last_error": next((link.client.last_error for link in self.links
                                       if link.client.last_error), None),
                   "asterisks": self.cluster.status()}
        return {
            "status": "ok" if self.agi.listening and connected else "degraded",
            "fastagi": {
                "listening": self.agi.listening,
                "port": self.agi.port,
                "active_sessions": self.agi.active,
                "outcomes": dict(self.agi.outcomes),
            },
            "ami": ami,
            "channels": sum(len(link.tracker.channels) for link in self.links),
            "guard": {
                "mode": self.settings.guard_mode,
                "pid": self.guard.pid if self.guard else None,
                "starts": sum(guard.starts for guard in self.guards),
            },
            "company": {
                "name": self._company.company.name if self._company else None,
                "version": self.company_version,
            },
            "settings": self.settings.source,
        }

    async def _load_company(self) -> None:
        assert self.db is not None
        async with self.db.sessions() as session:
            self._revisions = await current_revisions(session)
            company = await current_company(session)
            await self._load_greetings(session)
        if company is None and self.settings.company_file:
            # First start on an empty database: the company file is the starting point.
            config = load_company(self.settings.company_file, calendars=self.settings.calendar)
            result = await apply_company(
                self.db.sessions, config, applied_by="vaihde serve",
                source_name=str(Path(self.settings.company_file)),
            )
            log.info("company file applied to an empty database", extra={"version": result.version})
            async with self.db.sessions() as session:
                self._revisions = await current_revisions(session)
                company = await current_company(session)
        if company is None:
            raise NoCompany(
                "the database holds no company: run `vaihde config apply FILE` "
                "or set company_file in the settings"
            )
        self._company = company
        self.company_version = self._revisions.get(CONFIG, 0)

    async def _load_greetings(self, session: AsyncSession) -> None:
        rows = await session.execute(
            select(Caller.number, Caller.name).where(Caller.greet_by_name.is_(True))
        )
        self.greetings = {
            number: name.split()[0] for number, name in rows if name and name.split()
        }

    async def check_for_changes(self) -> None:
        """Reload what other processes changed (the revision counters say what)."""
        assert self.db is not None
        async with self.db.sessions() as session:
            revisions = await current_revisions(session)
            if revisions.get(CALLERS) != self._revisions.get(CALLERS):
                await self._load_greetings(session)
            if revisions.get(CONFIG) != self._revisions.get(CONFIG):
                company = await current_company(session)
                if company is not None:
                    self._company = company
                    self.company_version = revisions.get(CONFIG, 0)
                    self._prefetch()
                    self._company_changed()
                    log.info("company configuration reloaded",
                             extra={"version": self.company_version})
        self._revisions = revisions

    def _company_changed(self) -> None:
        """New teams, members or phones: the team queues and the new phones' states now."""
        if not any(link.client.connected for link in self.links):
            return  # the next login resyncs both
        self._spawn(self._sync_links(look=True), "vaihde-queues-sync")

    async def _sync_links(self, *, look: bool) -> None:
        """Every connected Asterisk: the company's phones' states (`look`: first on all of
        them, since where a phone lives decides how the others' queues ring it), then its team
        queues. A failure waits for the next login or change."""
        links = [link for link in self.links if link.client.connected]

        async def read(link: Link) -> None:
            await link.devices.look(link.client, devices_of(self.company))

        async def sync(link: Link) -> None:
            if link.queues is not None:
                await link.queues.resync()

        for step in ((read, sync) if look else (sync,)):
            results = await asyncio.gather(*(step(link) for link in links),
                                           return_exceptions=True)
            for link, result in zip(links, results, strict=True):
                if isinstance(result, Exception):
                    log.warning("team queues not synced", extra={"error": repr(result),
                                                                 "asterisk": link.name})

    async def _config_applied(self) -> None:
        """The admin applied a new company through the API: use it from the next call on."""
        await self.check_for_changes()
        if self.directory is not None:
            await self.directory.refresh()

    def _prefetch(self) -> None:
        """Synthesize the company's prompts in the background; until a prompt exists the flow
        plays a silent prompt rather than keeping the caller waiting for speech."""
        company = self._company
        if company is None:
            return

        async def run() -> None:
            report = await self.prompts.prefetch(company)
            log.info("prompts ready", extra={"generated": report.generated,
                     "reused": report.reused, "failed": report.failed})

        # One per company version: tracked like other short jobs, not kept after they finish.
        self._spawn(run(), "vaihde-prompts")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            try:
                await self.check_for_changes()
            except Exception as exc:  # a database hiccup must not stop the service
                log.warning("could not check for configuration changes",
                            extra={"error": repr(exc)})

    async def start(self) -> None:
        self.db = open_database(self.settings.database_url or None)
        await upgrade_async(self.db.engine)
        await self._load_company()
        (self.prompts.dir / "recordings").mkdir(parents=True, exist_ok=True)
        self._prefetch()
        self._presence = PresenceCache(
            self.db.sessions, tz=ZoneInfo(self.company.company.timezone)
        )
        await self._presence.load()
        for link in self.links:
            if link.queues is not None:
                self._presence.subscribe(link.queues.availability_changed)
        self.directory = LiveDirectory(self.db.sessions)
        await self.directory.refresh()
        await self.agi.start()
        for link in self.links:
            link.client.start()
        for guard in self.guards:
            await guard.start()
        self._tasks.append(asyncio.create_task(self._poll(), name="vaihde-poll"))
        self._tasks.append(asyncio.create_task(
            self._presence.run(PRESENCE_POLL_S), name="vaihde-presence"))
        for link in self.links:
            if link.queues is not None:
                self._tasks.append(asyncio.create_task(link.queues.run(), name="vaihde-queues"))
        self._tasks.append(asyncio.create_task(self.directory.run(), name="vaihde-directory"))
        messaging = self.settings.messaging
        self.sender = Sender(
            self.db.sessions, transports_from_settings(messaging), lambda: self.company,
            poll_interval=messaging.poll_interval_s, retry_for=messaging.retry_for,
        )
        self.sender.start()
        self.calendars = CalendarScheduler(
            self.db.sessions, self._calendar_feeds, lambda: self.company.company.timezone,
            self.settings.calendar, on_synced=self._presence.invalidate,
            interval=self.settings.calendar_interval_s,
        )
        self._tasks.append(asyncio.create_task(self.calendars.run(), name="vaihde-calendars"))
        tz = ZoneInfo(self.company.company.timezone)
        self.console = Console(ConsoleDeps(
            tracker=self.calls, ami=self.cluster if self.cluster.several else self.ami,
            stories=self.stories, routes=self.cluster if self.cluster.several else None,
            company=lambda: self._company, presence=self._presence, sessions=self.db.sessions,
            tz=tz, availability_json=lambda av: {
                **as_json(av, tz=tz),
                "devices": self.device_json(av.employee_id)},
            limits=lambda: Limits(self.settings.console_bounce_s, self.settings.console_ring_s,
                                  self.settings.mobile_dial),
            streams_per_user=self.settings.console_streams_per_user,
            device_reach=self.devices.reach,
        ))
        await self.console.start()
        app = make_app(self, sessions=self.db.sessions, http=self.settings.http)
        app.add_subapp("/api/v1", make_api(ApiContext(
            sessions=self.db.sessions, cache=self._presence, directory=self.directory,
            company=lambda: self._company, tz=tz,
            config_applied=self._config_applied,
            message_channels=messaging.channels, message_taken=self.sender.wake,
            recordings_dir=self.prompts.dir / "recordings", console=self.console,
            config_checker=ConfigChecker(self.settings.calendar),
            device_reach=lambda device: self.devices.reach(device).value,
        )))
        add_web(app, self.db.sessions)
        # Deadlines and a connection cap in front of aiohttp (vaihde.http.server).
        self._http = GuardedServer(app, self.settings.http)
        await self._http.start()
        self.http_port = self._http.port
        log.info(
            "vaihde serving",
            extra={
                "fastagi": f"{self.agi.host}:{self.agi.port}",
                "http": f"{self.settings.http.host}:{self.http_port}",
                "ami": " ".join(f"{link.settings.host}:{link.settings.port}"
                                for link in self.links),
                "company": self.company.company.name,
                "version": self.company_version,
            },
        )

    async def _hand_over(self, channels: list[Channel]) -> None:
        """Stopping: callers still in a menu go to the operators now (AMI Redirect, on the
        Asterisk that holds each), rather than after the grace and whatever is left of the prompt
        they are hearing. Calls whose route is already decided, and employees' feature codes, are
        left to finish."""
        waiting = [c for c in channels if c.script == contract.SCRIPT_INBOUND
                   and contract.ROUTE not in c.variables_set]
        moves: list[tuple[AmiClient, Channel]] = []
        for channel in waiting:
            link = self.cluster.link_of_call(channel.uniqueid)
            if link is not None and link.client.connected:
                moves.append((link.client, channel))
        if not moves:
            return

        async def move(client: AmiClient, channel: Channel) -> None:
            await client.action({"Action": "Setvar", "Channel": channel.name,
                                 "Variable": contract.REASON, "Value": "service-stopping"})
            await client.action({"Action": "Redirect", "Channel": channel.name,
                                 "Context": contract.OPERATOR_CONTEXT, "Exten": "s",
                                 "Priority": "1"})

        results = await asyncio.gather(*(move(c, ch) for c, ch in moves), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        log.info("calls in progress handed to the operators",
                 extra={"moved": len(moves) - len(failed), "failed": len(failed),
                        "left": len(waiting) - len(moves)})

    async def stop(self) -> None:
        if self.console is not None:
            # Open consoles' streams end first, so the HTTP server need not wait for them.
            await self.console.stop()
        await cancel_all((*self._tasks, *self._background))
        self._tasks.clear()
        await self.agi.stop(handover=self._hand_over)
        await asyncio.gather(*(link.client.close() for link in self.links))
        for guard in self.guards:
            await guard.stop()
        if self._http is not None:
            await self._http.stop()
            self._http = None
        await self.prompts.close()
        if self.sender is not None:
            await self.sender.stop()
        if self.db is not None:
            await self.db.close()
            self.db = None


async def serve(settings: settings_mod.Settings) -> None:
    service = Service(settings)
    await service.start()
    # Everything alive now (modules, settings, the company) lives as long as the process: keep
    # it out of the collector's full passes, which otherwise stop the loop for ~90 ms each.
    gc.collect()
    gc.freeze()
    # systemd (Type=notify): ready now; the pings come from this loop, so a blocked loop stops
    # them and systemd restarts the service (WatchdogSec=).
    try:
        await systemd.until_stopped("vaihde-watchdog")
    finally:
        log.info("vaihde stopping")
        with contextlib.suppress(Exception):
            await service.stop()
