"""What a caller hears on the company number: greeting, numbered menu, then a phone or a human.

`choose()` is the decision (pure); `inbound()` is the conversation that plays it out over AGI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vaihde import contract
from vaihde.agi.channel import Channel
from vaihde.config.settings import Company

log = logging.getLogger("vaihde.flows")


@dataclass(frozen=True, slots=True)
class Ring:
    """Ring these devices; on no answer the dialplan takes the caller to the operator."""

    dial: str
    seconds: int
    reason: str


@dataclass(frozen=True, slots=True)
class ToOperator:
    reason: str


@dataclass(frozen=True, slots=True)
class AskAgain:
    reason: str


Decision = Ring | ToOperator | AskAgain


def choose(company: Company, digits: str, attempt: int) -> Decision:
    """Decide from the caller's key press on attempt `attempt` (1-based)."""
    menu = company.menu
    option = menu.options.get(digits) if len(digits) == 1 else None
    if option is None:
        why = "no-choice" if not digits else "invalid-choice"
        # After the last attempt a person helps: never loop a caller in the menu.
        return ToOperator(f"menu-{why}") if attempt >= menu.attempts else AskAgain(why)
    if option.kind == "operator":
        return ToOperator(f"menu-{option.digit}-operator")
    employee = company.employees[option.target]
    return Ring(employee.dial_string, employee.ring_seconds, f"menu-{option.digit}-{employee.id}")


async def apply(channel: Channel, decision: Ring | ToOperator) -> None:
    """Hand the decision to the dialplan through the contract variables."""
    await channel.set_variable(contract.REASON, decision.reason)
    if isinstance(decision, Ring):
        await channel.set_variable(contract.DIAL, decision.dial)
        await channel.set_variable(contract.DIAL_TIMEOUT, str(decision.seconds))
        await channel.set_variable(contract.ROUTE, contract.Route.DIAL)
    else:
        await channel.set_variable(contract.ROUTE, contract.Route.OPERATOR)


async def inbound(channel: Channel, company: Company) -> Decision:
    menu = company.menu
    keys = "".join(sorted(menu.options))
    pressed = ""
    for sound in menu.greeting:
        # Callers who know the menu may press their choice during the greeting.
        pressed = await channel.stream_file(sound, keys) or ""
        if pressed:
            break
    attempt = 1
    while True:
        if not pressed:
            got = await channel.get_data(menu.prompt, menu.wait_ms, 1)
            pressed = got.digits
        decision = choose(company, pressed, attempt)
        log.info(
            "menu decision",
            extra={"uniqueid": channel.uniqueid, "attempt": attempt, "decision": decision},
        )
        if not isinstance(decision, AskAgain):
            await apply(channel, decision)
            return decision
        if pressed:
            await channel.stream_file(menu.invalid)
        pressed = ""
        attempt += 1
