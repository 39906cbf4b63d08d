"""The running service, wired: FastAGI for call decisions (vaihde.flows.router), AMI to every
Asterisk (vaihde.ami.cluster), HTTP for the console, the API and health, and the database with
the company (vaihde.company.live), everyone's availability (vaihde.presence.cache), messages and
the jobs that run on one instance at a time (vaihde.db.once). This module only builds those
parts, starts and stops them in order, and hands callers still in a menu to the operators when it
stops. Changing the settings file (addresses, database) needs a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from vaihde import collector, contract, systemd
from vaihde.agi.channel import Channel
from vaihde.agi.server import FastAgiServer
from vaihde.ami import AmiClient, CallTracker
from vaihde.ami.cluster import Cluster, Link, MergedCalls
from vaihde.ami.devicestate import DeviceStates
from vaihde.ami.music import NumberMusic
from vaihde.ami.phones import PhonePresence
from vaihde.ami.queues import QueueMembers
from vaihde.api import ApiContext, LiveDirectory, make_api
from vaihde.calendar.importer import CalendarScheduler
from vaihde.company import CompanyConfig
from vaihde.company.dials import devices_of
from vaihde.company.live import LiveCompany, NoCompany, Tenant
from vaihde.company.offloop import ConfigChecker
from vaihde.company.tenants import Roster
from vaihde.config import settings as settings_mod
from vaihde.console.actions import Limits
from vaihde.console.stream import Console, ConsoleDeps
from vaihde.db.changes import Changes
from vaihde.db.engine import Database, open_database
from vaihde.db.migrate import upgrade_async
from vaihde.db.models import AUTH, CALLERS, CONFIG, DIRECTORY, MESSAGES, PRESENCE
from vaihde.db.once import Leader
from vaihde.db.peer import Peer
from vaihde.directory.history import ContactHistory
from vaihde.dispatch.job import Dispatcher
from vaihde.flows.router import DialAdapter, SetsAvailability, build_router, phone_setter
from vaihde.guard.__main__ import GuardSettings
from vaihde.guard.child import GuardChild
from vaihde.http.health import make_app
from vaihde.http.server import GuardedServer
from vaihde.jobs import Background, cancel_all
from vaihde.messages.calls import CallMessages
from vaihde.messages.delivery import Sender, transports_from_settings
from vaihde.presence.cache import PresenceCache
from vaihde.prompts import PromptLibrary
from vaihde.records import as_json
from vaihde.reports.talk import TalkRecorder
from vaihde.story import StoryBook
from vaihde.web import add_web

log = logging.getLogger("vaihde.service")

# How often, without notifications (SQLite, or the PostgreSQL peer connection down), the service
# looks for availability changed by other processes: often, because a change must reach the
# team queues (QueuePause) within a second, even on a busy machine. One small query each time
# (about 0.6 ms of CPU on SQLite: 0.6 % of a core).
PRESENCE_POLL_S = 0.1
CALENDAR_JOB = "calendar-sync"  # the job one instance at a time runs (vaihde.db.once.Leader)
AMI_RETRY_MAX_S = 2.0  # the longest wait between attempts to reach an Asterisk that is down

__all__ = ["NoCompany", "Service", "serve"]


class Service:
    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        self.jobs = Background()  # short jobs started from callbacks, cancelled at stop
        self.router = build_router(self)
        fastagi = settings.fastagi
        self.agi = FastAgiServer(self.router, fastagi.host, fastagi.port,
                                 allow=fastagi.allow, secret=fastagi.secret)
        self.stories = StoryBook()
        self.phones: PhonePresence  # below, once the Asterisks' phones are merged
        # One AMI link per Asterisk, each with its own call tracker, phones' states and team
        # queues (vaihde.ami.cluster); with one Asterisk, exactly the objects of before.
        # An Asterisk that was down is tried every 2 s at most (as the guard does): the consoles
        # show its calls, and routing knows its phones, within seconds of it being back.
        self.links: list[Link] = [
            Link(ast, AmiClient(ast.host, ast.port, ast.username, ast.secret,
                                reconnect_max=AMI_RETRY_MAX_S), CallTracker(),
                 DeviceStates(watch=lambda: self.phones.watched()))
            for ast in settings.all_asterisks()
        ]
        self.cluster = Cluster(self.links)  # its systemname check is each login's first hook
        for link in self.links:
            link.tracker.attach(link.client)
            link.devices.attach(link.client)
            link.queues = QueueMembers(
                link.client, self._roster, lambda eid: self.presence.lookup(eid),
                settings.mobile_dial,
                via=self.cluster.dial_from(link) if self.cluster.several else None,
            )
            link.queues.attach()
            link.music = NumberMusic(link.client, lambda: self._companies().values())
            link.music.attach()
            link.client.add_event_listener(self.stories.apply)
        first = self.links[0]
        # The first (or only) Asterisk's, as before: tests and benchmarks read these.
        self.ami, self.tracker, self.queues = first.client, first.tracker, first.queues
        self.calls = self.cluster.calls  # every Asterisk's calls
        self.devices = self.cluster.devices
        self.phones = PhonePresence(
            self.devices, self._roster, lambda: self._presence,
            lambda: self.console.publish_availability if self.console is not None else None)
        self.cluster.follow_moves(self.jobs)
        self.prompts = PromptLibrary(
            settings.prompts_dir, settings.prompts_asterisk_dir or None,
            default_language="fi",
        )
        self.db: Database | None = None
        self.checker: ConfigChecker | None = None
        self.peer: Peer | None = None  # PostgreSQL: this instance's own connection
        self.changes = Changes()
        self.live: LiveCompany | None = None
        self._presence: PresenceCache | None = None
        self._messages: CallMessages | None = None
        self._set_from_phone: SetsAvailability | None = None
        self.calendars: CalendarScheduler | None = None
        self.calendar_leader: Leader | None = None
        self.sender: Sender | None = None
        self.dispatcher: Dispatcher | None = None
        self.directory: LiveDirectory | None = None
        self.console: Console | None = None
        self.talks: TalkRecorder | None = None
        self._tasks: list[asyncio.Task[None]] = []
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

    # --- what the call handlers use (vaihde.flows.router.CallHost) -------------------------------

    def _current(self) -> CompanyConfig | None:
        return self.live.current if self.live is not None else None

    def _roster(self) -> Roster | None:
        """Every company's employees and teams (phones and team queues serve all of them)."""
        return self.live.roster if self.live is not None and self.live.tenants else None

    @property
    def company(self) -> CompanyConfig:
        if self.live is None:
            raise NoCompany("no company configuration loaded")
        return self.live.company

    def for_call(self, dialled: str, forwarded_from: str) -> Tenant:
        if self.live is None:
            raise NoCompany("no company configuration loaded")
        return self.live.for_call(dialled, forwarded_from)

    def company_by_device(self, device: str) -> CompanyConfig | None:
        return self.live.roster.company_by_device(device) if self.live is not None else None

    def _company_by_id(self, company_id: str) -> CompanyConfig | None:
        tenant = self.live.tenant(company_id) if self.live is not None else None
        return tenant.config if tenant is not None else None

    def _timezone_of(self, employee_id: str) -> str:
        """The time zone of an employee's company (the first company's for nobody's)."""
        company = self._current()
        first = company.company.timezone if company is not None else "UTC"
        return self.live.roster.timezone_of(employee_id, first) if self.live is not None else first

    def _zone_of(self, employee_id: str) -> tzinfo:
        return ZoneInfo(self._timezone_of(employee_id))  # ZoneInfo keeps each zone it made

    def _employee_company(self, employee_id: str) -> str | None:
        found = self.live.company_of_employee(employee_id) if self.live is not None else None
        return found.id if found is not None else None

    @property
    def company_version(self) -> int:
        return self.live.version if self.live is not None else 0

    @property
    def greetings(self) -> Mapping[str, str]:
        return self.live.greetings if self.live is not None else {}

    @property
    def presence(self) -> PresenceCache:
        if self._presence is None:
            raise RuntimeError("presence cache not loaded yet")
        return self._presence

    @property
    def messages(self) -> CallMessages:
        if self._messages is None:
            raise RuntimeError("not started")
        return self._messages

    @property
    def set_from_phone(self) -> SetsAvailability:
        if self._set_from_phone is None:
            raise RuntimeError("not started")
        return self._set_from_phone

    def dial_adapter(self, uniqueid: str) -> DialAdapter | None:
        return self.cluster.dial_adapter(uniqueid)

    # --- health -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        connected = all(link.client.connected for link in self.links)
        ami: dict[str, Any] = {"connected": self.ami.connected, "last_error": self.ami.last_error}
        if self.cluster.several:
            ami = {"connected": connected,
                   "last_error": next((link.client.last_error for link in self.links
                                       if link.client.last_error), None),
                   "asterisks": self.cluster.status()}
        company = self._current()
        out: dict[str, Any] = {
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
                "name": company.company.name if company else None,
                "version": self.company_version,
            },
            "companies": len(self.live.tenants) if self.live is not None else 0,
            "settings": self.settings.source,
        }
        if self.peer is not None:
            # Several instances on PostgreSQL: this one's link to the others, and its jobs.
            out["shared"] = {
                **self.peer.status(),
                "jobs": {CALENDAR_JOB: self.calendar_leader.status()
                         if self.calendar_leader is not None else None},
                "dispatch": self.dispatcher.status() if self.dispatcher is not None else None,
            }
        return out

    # --- start and stop -----------------------------------------------------------------------

    def _companies(self) -> dict[str, CompanyConfig]:
        """The companies served, by id."""
        return dict(self.live.companies) if self.live is not None else {}

    def _company_changed(self, company: CompanyConfig) -> None:
        """New teams, members, phones or numbers: the team queues, the new phones' states and
        the numbers' music now."""
        if not any(link.client.connected for link in self.links):
            return  # the next login resyncs them all
        self.jobs.spawn(self.cluster.sync(devices_of(company), look=True), "vaihde-queues-sync")
        for link in self.links:
            if link.music is not None:
                self.jobs.spawn(link.music.changed(), "vaihde-music-sync")

    def _task(self, job: Any, name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(job, name=name))

    async def start(self, *, listen: bool = True) -> None:
        """Everything, then FastAGI (`listen=False`: all but FastAGI; `listen()` later)."""
        settings = self.settings
        self.db = db = open_database(settings.database_url or None)
        await upgrade_async(db.engine)
        # PostgreSQL: changes committed by other instances arrive at commit (LISTEN), and this
        # instance's claims and jobs are its own while its peer connection lives.
        self.peer = Peer.for_database(db, name=f"vaihde {settings.fastagi.host}:"
                                               f"{settings.fastagi.port}")
        if self.peer is not None:
            await self.peer.start()
        self.changes = changes = Changes(self.peer)
        self.live = live = LiveCompany(db.sessions, self.prompts, self.jobs,
                                       company_file=settings.company_file,
                                       company_files=settings.company_files,
                                       calendars=settings.calendar)
        company = await live.load()
        live.on_change(self._company_changed)
        (self.prompts.dir / "recordings").mkdir(parents=True, exist_ok=True)
        tz = company.zone
        self._presence = presence = PresenceCache(db.sessions, tz=tz, zone=self._zone_of)
        await presence.load()
        self._set_from_phone = phone_setter(db.sessions, presence)
        for link in self.links:
            if link.queues is not None:
                presence.subscribe(link.queues.availability_changed)
        self.directory = directory = LiveDirectory(db.sessions)
        await directory.refresh()
        self.stories.on_finished = ContactHistory(db.sessions, self.jobs).finished
        for link in self.links:
            link.client.start()
        for guard in self.guards:
            await guard.start()
        self._task(live.run(changes.watch(CONFIG, CALLERS)), "vaihde-company")
        self._task(presence.run(PRESENCE_POLL_S, watch=changes.watch(PRESENCE, DIRECTORY)),
                   "vaihde-presence")
        for link in self.links:
            if link.queues is not None:
                self._task(link.queues.run(), "vaihde-queues")
        self._task(directory.run(watch=changes.watch(DIRECTORY)), "vaihde-directory")
        messaging = settings.messaging
        self.sender = sender = Sender(
            db.sessions, transports_from_settings(messaging), lambda: self.company,
            poll_interval=messaging.poll_interval_s, retry_for=messaging.retry_for,
            holder=self.peer, company_by_id=self._company_by_id,
        )
        sender.start()
        # Urgent messages' SMS, escalations and the daily summaries: every instance runs it,
        # each item is taken by one (vaihde.dispatch.store).
        self.dispatcher = dispatcher = Dispatcher(
            db.sessions, self._companies, sms=messaging.sms, smtp=messaging.smtp,
            holder=self.peer)
        dispatcher.start()

        def message_taken() -> None:
            sender.wake()
            dispatcher.wake()

        # A message taken or retried by another instance is sent at once (whoever claims it).
        self._task(changes.follow((MESSAGES,), message_taken), "vaihde-messages-wake")
        self._messages = CallMessages(
            db.sessions, lambda: self.company, recordings=self.prompts.dir / "recordings",
            asterisk_recordings=f"{self.prompts.asterisk_dir.rstrip('/')}/recordings",
            channels=messaging.channels, taken=message_taken, company_by_id=self._company_by_id,
        )
        self.calendars = calendars = CalendarScheduler(
            db.sessions,
            lambda: {e.id: e.calendar for c in self.live.companies.values()
                     for e in c.employees.values() if e.calendar} if self.live else {},
            self._timezone_of, settings.calendar,
            on_synced=presence.invalidate, interval=settings.calendar_interval_s,
        )
        # One instance at a time fetches the calendars (they write availability for everyone).
        self.calendar_leader = Leader(CALENDAR_JOB, calendars.run, self.peer)
        self._task(self.calendar_leader.run(), "vaihde-calendars")
        self.console = console = Console(ConsoleDeps(
            tracker=self.calls, ami=self.cluster if self.cluster.several else self.ami,
            stories=self.stories, routes=self.cluster if self.cluster.several else None,
            company=self._current, presence=presence, sessions=db.sessions,
            company_by_id=self._company_by_id,
            tz=tz, availability_json=lambda av: {
                **as_json(av, tz=presence.zone_of(av.employee_id)),  # their company's zone
                "devices": self.phones.device_json(av.employee_id)},
            limits=lambda: Limits(self.settings.console_bounce_s, self.settings.console_ring_s,
                                  self.settings.mobile_dial),
            streams_per_user=settings.console_streams_per_user,
            device_reach=self.devices.reach, credentials=changes.watch(AUTH),
            employee_company=self._employee_company,
        ))
        await console.start()
        # Operators' talk time per company, stored as it happens (the usage report).
        self.talks = TalkRecorder(
            self.calls, self.stories, db.sessions,
            frozen=self.calls.frozen if isinstance(self.calls, MergedCalls) else None)
        self._task(self.talks.run(), "vaihde-talks")

        async def config_applied() -> None:
            """The admin applied a new company through the API: from the next call on."""
            await live.check_for_changes()
            await directory.refresh()

        # The next company check's process, started now and waiting for a file.
        self.checker = ConfigChecker(settings.calendar)
        self.checker.warm()
        app = make_app(self, sessions=db.sessions, http=settings.http)
        app.add_subapp("/api/v1", make_api(ApiContext(
            sessions=db.sessions, cache=presence, directory=directory,
            company=self._current, tz=tz, config_applied=config_applied,
            message_channels=messaging.channels, message_taken=message_taken,
            recordings_dir=self.prompts.dir / "recordings", console=console,
            config_checker=self.checker,
            device_reach=lambda device: self.devices.reach(device).value,
            directory_of=directory.of, directories=directory.parts, roster=self._roster,
            wrap_up_max_s=settings.wrap_up_max_s,
            sms_inbound_token=messaging.sms.inbound_token if messaging.sms else "",
        )))
        add_web(app, db.sessions)
        # Deadlines and a connection cap in front of aiohttp (vaihde.http.server).
        self._http = GuardedServer(app, settings.http)
        await self._http.start()
        self.http_port = self._http.port
        if listen:
            await self.listen()

    async def listen(self) -> None:
        """Take calls: FastAGI listens. Last of all, once the service has started: until then
        its port is closed, so that Asterisk tries the next instance's at once (VAIHDE_AGI2)
        instead of a call waiting in silence for a service still starting, or failing in it."""
        await self.agi.start()
        log.info(
            "vaihde serving",
            extra={
                "fastagi": f"{self.agi.host}:{self.agi.port}",
                "http": f"{self.settings.http.host}:{self.http_port}",
                "ami": " ".join(f"{link.settings.host}:{link.settings.port}"
                                for link in self.links),
                "company": self.company.company.name,
                "version": self.company_version,
                "shared": self.peer is not None,
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
        await cancel_all(self._tasks)
        await self.jobs.cancel()
        self._tasks.clear()
        await self.agi.stop(handover=self._hand_over)
        await asyncio.gather(*(link.client.close() for link in self.links))
        for guard in self.guards:
            await guard.stop()
        if self._http is not None:
            await self._http.stop()
            self._http = None
        await self.prompts.close()
        if self.checker is not None:
            self.checker.close()
        if self.sender is not None:
            await self.sender.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.peer is not None:
            # Last: this instance's claims and jobs stay its own until its work has ended.
            await self.peer.stop()
        if self.db is not None:
            await self.db.close()
            self.db = None


async def serve(settings: settings_mod.Settings) -> None:
    service = Service(settings)
    await service.start(listen=False)
    # Everything alive now lives as long as the process; the calls' objects are freed as they
    # end: no collector pass over all of them while callers wait (vaihde.collector).
    collector.settle()
    collector.watch_pauses()
    watching = asyncio.get_running_loop().create_task(
        collector.Collector().watch(), name="vaihde-collector")
    await service.listen()
    # systemd (Type=notify): ready now; the pings come from this loop, so a blocked loop stops
    # them and systemd restarts the service (WatchdogSec=).
    try:
        await systemd.until_stopped("vaihde-watchdog")
    finally:
        log.info("vaihde stopping")
        watching.cancel()
        with contextlib.suppress(Exception):
            await service.stop()
