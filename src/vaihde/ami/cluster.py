"""Several Asterisks: one supervised AMI link per Asterisk (its call tracker, phones' states and
team queues) and the merged views that the console, routing and presence read.

Call ids are global because every Asterisk has a `systemname` of its own, which begins each
Uniqueid it makes (`ast2-1718000000.42`); every login checks it (`system_name_problem`). A phone
lives on one Asterisk: its state there wins (`merged_state`), and a call on another Asterisk
reaches it through that Asterisk's `reach` template (`dial_via`), e.g. `PJSIP/{resource}@to-ast1`,
a trunk into the shipped `[vaihde-reach]` context there.

The decisions are pure functions; `MergedCalls`, `MergedDevices` and `Cluster` only hold state.
With one Asterisk nothing here is in the way: the service reads its tracker and device states
directly, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vaihde import contract
from vaihde.ami.client import AmiClient, AmiRefused
from vaihde.ami.devicestate import IN_USE, DeviceStates, Listener, ReachListener, reach_of, tell
from vaihde.ami.music import NumberMusic
from vaihde.ami.queues import QueueMembers
from vaihde.ami.tracker import Bridge, CallTracker, ChangeQueue, Channel, ParkedCall, QueueCaller
from vaihde.company.dials import Reach
from vaihde.config.settings import AsteriskSettings
from vaihde.jobs import Background

log = logging.getLogger("vaihde.ami.cluster")

__all__ = [
    "CallsView", "Cluster", "Link", "MergedCalls", "MergedDevices", "dial_via", "link_of_uniqueid",
    "merge_queues", "merged_state", "rewrite", "state_rank", "system_name_problem"
]

# How much a device state says about where the phone is: a phone in a call or ready to ring
# is surely there; unavailable (a phone that is configured but not registered) less so; an
# unknown state nothing; INVALID ("no such device here") least.
_RANK_IN_USE, _RANK_REACHABLE, _RANK_UNAVAILABLE, _RANK_UNKNOWN, _RANK_INVALID = 4, 3, 2, 1, 0
_REACHABLE = frozenset({"NOT_INUSE", "RINGING"})


def state_rank(state: str | None) -> int:
    if state is None:
        return _RANK_UNKNOWN
    state = state.upper()
    if state in IN_USE:
        return _RANK_IN_USE
    if state in _REACHABLE:
        return _RANK_REACHABLE
    if state == "UNAVAILABLE":
        return _RANK_UNAVAILABLE
    if state == "INVALID":
        return _RANK_INVALID
    return _RANK_UNKNOWN


def merged_state(states: Iterable[str | None]) -> str | None:
    """One device's state over every Asterisk (in the order configured): the one that says the
    most about the phone (in use > reachable > unavailable > unknown > invalid); the first
    Asterisk's wins a tie."""
    best: str | None = None
    best_rank = -1
    for state in states:
        rank = state_rank(state)
        if rank > best_rank:
            best, best_rank = state, rank
    return best


def dial_via(
    here: str,
    device: str,
    states: Mapping[str, str | None],
    template: Callable[[str, str], str],
) -> str:
    """How Asterisk `here` dials `device`: itself when it has the phone (reachable or in use
    there, or nobody else has it), else through the first other Asterisk that has it, with that
    Asterisk's template for `here` (`template(home, here)`; "" = none: the device as it is).
    `states`: each Asterisk's state of the device, in the order configured."""
    if state_rank(states.get(here)) >= _RANK_REACHABLE:
        return device
    for home, state in states.items():
        if home == here or state_rank(state) < _RANK_REACHABLE:
            continue
        pattern = template(home, here)
        if not pattern:
            return device
        _, _, resource = device.partition("/")
        return pattern.format(device=device, resource=resource or device)
    return device


def rewrite(dial: str, via: Callable[[str], str]) -> str:
    """A Dial() string of one or more devices (`A&B`), each as `via` reaches it."""
    if not dial:
        return dial
    return "&".join(via(part) for part in dial.split("&"))


def system_name_problem(
    configured: str, reported: str, others: Mapping[str, str], several: bool
) -> str:
    """Why a freshly logged-in Asterisk must not be used ("" = it may): with several, each needs
    a systemname of its own (it begins every call id), and the name configured for it must be
    that systemname (a wrong host or port would otherwise mix up two Asterisks' calls).
    `others`: the systemnames of the other Asterisks connected now, by configured name."""
    if not reported:
        if several:
            return (f"Asterisk {configured!r} has no systemname: with several Asterisks each needs "
                    f"its own (asterisk.conf, [options] systemname = {configured}), or their call "
                    "ids would collide")
        return ""
    if configured and reported != configured:
        return (f"service.asterisks names this Asterisk {configured!r} but its systemname is "
                f"{reported!r}: a wrong host or port, or set systemname = {configured} in its "
                "asterisk.conf")
    for name, theirs in others.items():
        if theirs == reported:
            return (f"Asterisk {configured or reported!r} reports systemname {reported!r}, as "
                    f"{name!r} does: each Asterisk needs a systemname of its own")
    return ""


def link_of_uniqueid(uniqueid: str, system_names: Mapping[str, str]) -> str | None:
    """The Asterisk (by configured name) whose systemname begins this Uniqueid."""
    for name, system in system_names.items():
        if system and uniqueid.startswith(system + "-"):
            return name
    return None


def merge_queues(
    views: Sequence[Mapping[str, list[QueueCaller]]],
) -> dict[str, list[QueueCaller]]:
    """Same-named queues of several Asterisks as one list per name, longest waiting first. Each
    caller keeps the position its own Asterisk gives it: the queues are served apart (an
    operator's phone is rung by one Asterisk's app_queue), so there are several first places."""
    out: dict[str, list[QueueCaller]] = {}
    for view in views:
        for queue, entries in view.items():
            out.setdefault(queue, []).extend(entries)
    if len(views) > 1:
        for entries in out.values():
            entries.sort(key=lambda qc: (qc.joined_wall, qc.position))
    return out


# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallsView:
    """Channels, bridges, queues and parked calls (vaihde.console.board.TrackerView)."""

    channels: Mapping[str, Channel]
    bridges: Mapping[str, Bridge]
    queues: Mapping[str, list[QueueCaller]]
    parked: Mapping[str, ParkedCall]


class MergedCalls:
    """Several call trackers read as one (vaihde.console.board.TrackerView and what the console
    hub uses of a CallTracker). Uniqueids and bridge ids are global, so channels, bridges and
    parked calls are simply united. An Asterisk that is not synced (its AMI link is down) has
    its calls left out: nobody can act on them, and what it shows would be stale."""

    def __init__(self, trackers: Sequence[tuple[str, CallTracker]]) -> None:
        self.trackers = list(trackers)

    def _live(self) -> list[CallTracker]:
        return [t for _, t in self.trackers if t.synced]

    @property
    def channels(self) -> Mapping[str, Channel]:
        return ChainMap(*(t.channels for t in self._live()))  # type: ignore[arg-type]

    @property
    def bridges(self) -> Mapping[str, Bridge]:
        return ChainMap(*(t.bridges for t in self._live()))  # type: ignore[arg-type]

    @property
    def parked(self) -> Mapping[str, ParkedCall]:
        return ChainMap(*(t.parked for t in self._live()))  # type: ignore[arg-type]

    @property
    def queues(self) -> Mapping[str, list[QueueCaller]]:
        return merge_queues([t.queues for t in self._live()])

    def frozen(self) -> CallsView:
        """The merged state now, as plain dicts: what one recomputation of the board reads
        (many lookups, so united once rather than looked up Asterisk by Asterisk)."""
        live = self._live()
        channels: dict[str, Channel] = {}
        bridges: dict[str, Bridge] = {}
        parked: dict[str, ParkedCall] = {}
        for tracker in live:
            channels.update(tracker.channels)
            bridges.update(tracker.bridges)
            parked.update(tracker.parked)
        return CallsView(channels, bridges, merge_queues([t.queues for t in live]), parked)

    @property
    def synced(self) -> bool:
        return all(t.synced for _, t in self.trackers)

    def channel(self, uniqueid: str) -> Channel | None:
        for _, tracker in self.trackers:
            found = tracker.channel(uniqueid)
            if found is not None:
                return found
        return None

    def asterisk_of(self, uniqueid: str) -> str | None:
        for name, tracker in self.trackers:
            if tracker.channel(uniqueid) is not None:
                return name
        return None

    def subscribe(self, maxsize: int = 1000) -> ChangeQueue:
        queue = ChangeQueue(maxsize)
        for _, tracker in self.trackers:
            tracker.subscribe(queue=queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        for _, tracker in self.trackers:
            tracker.unsubscribe(queue)


class MergedDevices:
    """Phones' states over every Asterisk: `reach` and `in_use` merged per device (the state
    from the Asterisk the phone lives on), listeners told when the merged value changes, and
    `dial_from`: how a call on one Asterisk reaches a phone that may live on another."""

    def __init__(
        self,
        links: Sequence[tuple[str, DeviceStates]],
        template: Callable[[str, str], str] = lambda _home, _here: "",
    ) -> None:
        self.links = list(links)
        self.template = template
        self.in_use: dict[str, bool] = {}
        self._reach: dict[str, Reach] = {}
        self._routes: dict[str, tuple[str, ...]] = {}
        self._listeners: list[Listener] = []
        self._reach_listeners: list[ReachListener] = []
        self._route_listeners: list[Callable[[str], None]] = []
        for _, states in self.links:
            states.add_state_listener(self._changed)

    def add_listener(self, cb: Listener) -> None:
        self._listeners.append(cb)

    def add_reach_listener(self, cb: ReachListener) -> None:
        self._reach_listeners.append(cb)

    def add_route_listener(self, cb: Callable[[str], None]) -> None:
        """Hears a device whose way from some Asterisk changed (it registered elsewhere)."""
        self._route_listeners.append(cb)

    def states_of(self, device: str) -> dict[str, str | None]:
        return {name: states.states.get(device) for name, states in self.links}

    def state(self, device: str) -> str | None:
        return merged_state(states.states.get(device) for _, states in self.links)

    def reach(self, device: str) -> Reach:
        return reach_of(self.state(device))

    def contacts(self, device: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for _, states in self.links:
            out.update(states.contacts(device))
        return out

    def dial_from(self, here: str, device: str) -> str:
        return dial_via(here, device, self.states_of(device), self.template)

    def _changed(self, device: str, _state: str) -> None:
        state = self.state(device)
        busy = state is not None and state.upper() in IN_USE
        if self.in_use.get(device) != busy:
            self.in_use[device] = busy
            tell(self._listeners, device, busy)
        reach = reach_of(state)
        if self._reach.get(device, Reach.UNKNOWN) is not reach:
            self._reach[device] = reach
            tell(self._reach_listeners, device, reach)
        routes = tuple(self.dial_from(name, device) for name, _ in self.links)
        if self._routes.get(device, tuple(device for _ in self.links)) != routes:
            self._routes[device] = routes
            tell(self._route_listeners, device)

    async def look(self, clients: Mapping[str, Any], devices: Iterable[str]) -> None:
        """Read these devices' states now on every connected Asterisk."""
        wanted = list(devices)
        await asyncio.gather(*(
            states.look(clients[name], wanted) for name, states in self.links
            if name in clients and clients[name].connected))


@dataclass
class Link:
    """One Asterisk: its settings, AMI client, call tracker, phones' states, team queues and
    each number's music."""

    settings: AsteriskSettings
    client: AmiClient
    tracker: CallTracker
    devices: DeviceStates
    queues: QueueMembers | None = None
    music: NumberMusic | None = None  # each company number's music class, as its globals
    system_name: str = ""  # as Asterisk reported it at the last login ("" = none, or not asked)
    accepted: bool = field(default=False)

    @property
    def name(self) -> str:
        return self.settings.name or self.system_name or f"{self.client.host}:{self.client.port}"


class Cluster:
    """Every configured Asterisk, and what the service and the console need across them."""

    def __init__(self, links: Sequence[Link]) -> None:
        if not links:
            raise ValueError("at least one Asterisk")
        self.links = list(links)
        self.several = len(self.links) > 1
        by_name = {link.settings.name: link for link in self.links}

        def template(home: str, here: str) -> str:
            link = by_name.get(home)
            return link.settings.reach_from(here) if link is not None else ""

        self.template = template
        self.calls: CallTracker | MergedCalls = (
            MergedCalls([(link.name, link.tracker) for link in self.links])
            if self.several else self.links[0].tracker)
        # Phones' states: merged over several Asterisks; with one, that Asterisk's as they are.
        self.merged: MergedDevices | None = None
        self.devices: DeviceStates | MergedDevices = self.links[0].devices
        if self.several:
            self.merged = MergedDevices(
                [(link.settings.name, link.devices) for link in self.links], template)
            self.devices = self.merged
        self._state_listeners: list[Callable[[bool], None]] = []
        for link in self.links:
            if link.settings.name:
                # First of the link's hooks: nothing is read from an Asterisk it refuses.
                link.client.add_on_connected(self._checker(link))
            link.client.add_state_listener(self._link_state(link))

    # --- logins ---------------------------------------------------------------------------

    def _checker(self, link: Link) -> Callable[[Any], Any]:
        async def check(client: Any) -> None:
            link.accepted = False
            reply = await client.action({"Action": "Getvar", "Variable": "SYSTEMNAME"})
            value = reply.get("Value") if hasattr(reply, "get") else None
            reported = value if isinstance(value, str) else ""
            others = {other.settings.name: other.system_name for other in self.links
                      if other is not link and other.accepted and other.client.connected}
            problem = system_name_problem(link.settings.name, reported, others, self.several)
            if problem:
                raise AmiRefused(problem)
            link.system_name = reported
            link.accepted = True

        return check

    def _link_state(self, link: Link) -> Callable[[bool], None]:
        def changed(connected: bool) -> None:
            if not connected:
                link.accepted = False
            for cb in list(self._state_listeners):
                try:
                    cb(self.connected)
                except Exception:
                    log.exception("cluster state listener failed", extra={"asterisk": link.name})

        return changed

    # --- reading --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return all(link.client.connected for link in self.links)

    def status(self) -> list[dict[str, Any]]:
        return [{"name": link.name, "connected": link.client.connected,
                 "system_name": link.system_name, "last_error": link.client.last_error}
                for link in self.links]

    def ami_json(self) -> dict[str, Any]:
        """The console's AMI indicator: everything up, and which Asterisk is."""
        return {"connected": self.connected,
                "asterisks": [{"name": link.name, "connected": link.client.connected}
                              for link in self.links]}

    def link_of_call(self, uniqueid: str) -> Link | None:
        """The Asterisk that holds this channel (its tracker, else its systemname prefix)."""
        if not self.several:
            return self.links[0]
        for link in self.links:
            if link.tracker.channel(uniqueid) is not None:
                return link
        name = link_of_uniqueid(uniqueid, {link.name: link.system_name for link in self.links})
        return next((link for link in self.links if link.name == name), None)

    def dial_from(self, link: Link) -> Callable[[str], str]:
        """Device → how `link`'s Asterisk dials it."""
        merged = self.merged
        if merged is None:
            return lambda device: device
        here = link.settings.name
        return lambda device: merged.dial_from(here, device)

    def dial_adapter(self, uniqueid: str) -> Callable[[str, str], str] | None:
        """For a caller's AGI session: the route's Dial() strings (VAIHDE_DIAL, VAIHDE_DIAL2…)
        as the call's own Asterisk reaches each phone (None with one Asterisk: as they are)."""
        if not self.several:
            return None
        link = self.link_of_call(uniqueid)
        if link is None:
            return None
        via = self.dial_from(link)

        def adapt(name: str, value: str) -> str:
            step = name[len(contract.DIAL):]
            if name.startswith(contract.DIAL) and (not step or step.isdigit()):
                return rewrite(value, via)
            return value

        return adapt

    # --- team queues on every Asterisk --------------------------------------------------------

    async def sync(self, devices: Iterable[str], *, look: bool) -> None:
        """Every connected Asterisk: the company's phones' states (`look`: first on all of
        them, since where a phone lives decides how the others' queues ring it), then its team
        queues. A failure waits for the next login or change. Each instance does this for itself:
        the members and pauses follow the one shared availability, so two instances syncing
        the same queue send the same actions (a repeated QueueAdd or QueuePause changes
        nothing)."""
        links = [link for link in self.links if link.client.connected]
        wanted = list(devices)

        async def read(link: Link) -> None:
            await link.devices.look(link.client, wanted)

        async def resync(link: Link) -> None:
            if link.queues is not None:
                await link.queues.resync()

        for step in ((read, resync) if look else (resync,)):
            results = await asyncio.gather(*(step(link) for link in links),
                                           return_exceptions=True)
            for link, result in zip(links, results, strict=True):
                if isinstance(result, Exception):
                    log.warning("team queues not synced", extra={"error": repr(result),
                                                                 "asterisk": link.name})

    def follow_moves(self, jobs: Background) -> None:
        """A phone now reached another way from some Asterisk (it registered on another one):
        the team queues' members follow, once the burst is over."""
        merged = self.merged
        if merged is None:
            return
        moved = False
        running: asyncio.Task[None] | None = None

        async def run() -> None:
            nonlocal moved
            while moved:
                await asyncio.sleep(0.5)
                moved = False  # a move during the sync below syncs once more
                await self.sync((), look=False)

        def on_move(_device: str) -> None:
            nonlocal moved, running
            moved = True
            if running is None or running.done():
                running = jobs.spawn(run(), "vaihde-queues-moved")

        merged.add_route_listener(on_move)

    # --- the console's view (vaihde.console.stream.CallRoutes) ------------------------------

    def client_for(self, call_id: str) -> AmiClient | None:
        link = self.link_of_call(call_id)
        return link.client if link is not None else None

    def name_for(self, call_id: str) -> str:
        link = self.link_of_call(call_id)
        return link.name if link is not None else ""

    def channels_for(self, call_id: str) -> Mapping[str, Channel]:
        link = self.link_of_call(call_id)
        return link.tracker.channels if link is not None else {}

    def dial_for(self, call_id: str) -> Callable[[str], str]:
        link = self.link_of_call(call_id)
        return self.dial_from(link) if link is not None else (lambda device: device)

    async def locate(self, devices: Iterable[str]) -> None:
        """Read the state of phones some connected Asterisk knows nothing about yet (an
        operator's own phone is not a company device, so nobody watches it), so that a call
        reaches it from whichever Asterisk holds the call."""
        wanted = [d for d in devices if d]
        tasks = []
        for link in self.links:
            if not link.client.connected:
                continue
            unknown = [d for d in wanted
                       if (link.devices.states.get(d) or "UNKNOWN").upper() == "UNKNOWN"]
            if unknown:
                tasks.append(link.devices.look(link.client, unknown))
        if tasks:
            await asyncio.gather(*tasks)

    # --- AmiState for the console: listeners on every Asterisk -------------------------------

    def add_state_listener(self, cb: Callable[[bool], None]) -> None:
        self._state_listeners.append(cb)

    def remove_state_listener(self, cb: Callable[[bool], None]) -> None:
        self._state_listeners = [c for c in self._state_listeners if c is not cb]

    def add_event_listener(self, cb: Callable[[Mapping[str, Any]], object]) -> None:
        for link in self.links:
            link.client.add_event_listener(cb)

    def remove_event_listener(self, cb: Callable[[Mapping[str, Any]], object]) -> None:
        for link in self.links:
            link.client.remove_event_listener(cb)

    async def action(self, action: Mapping[str, Any], timeout: float | None = None) -> Any:
        """Actions go to the Asterisk that holds the call: `client_for(call_id)`."""
        raise AmiRefused("an action needs its Asterisk: use client_for(call_id)")
