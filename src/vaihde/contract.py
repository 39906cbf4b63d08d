"""The contract between the service and dialplan/: channel variable names and their values.

Everything the dialplan reads from or hands to the service is named here and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum

# Set by the service before the AGI session ends; read by [vaihde-main] in dialplan/vaihde.conf.
ROUTE = "VAIHDE_ROUTE"
DIAL = "VAIHDE_DIAL"  # Dial() device string, built only from validated configuration
DIAL_TIMEOUT = "VAIHDE_DIAL_TIMEOUT"  # seconds
# Ringing in order: VAIHDE_DIAL2 / VAIHDE_DIAL2_TIMEOUT … rung one after another after VAIHDE_DIAL;
# the first empty VAIHDE_DIALn ends the walk.
TEAM_QUEUE = "VAIHDE_TEAM_QUEUE"  # a team's Asterisk queue (validated name), route `queue`
REASON = "VAIHDE_REASON"  # why the call went where it went; shown to the operator
CALL_ID = "VAIHDE_CALL_ID"  # the service's id for the call's story (inherited by dialled legs)
SOUGHT = "VAIHDE_SOUGHT"  # whom the caller tried to reach, "employee:anna" (AMI channelvars)
# The company's own music on hold (a validated musiconhold.conf class): [vaihde-main] makes it
# the caller's CHANNEL(musicclass), which wins over the queue's, Dial()'s and parking's class.
MUSIC_CLASS = "VAIHDE_MOH"
# + a company number's digits (as VAIHDE_DID has them): a dialplan global with that number's
# company's class, which [vaihde-main] uses before the service routes, or if it cannot.
NUMBER_MUSIC = "VAIHDE_MOH_"

# Set by the dialplan.
DID = "VAIHDE_DID"  # the dialled company number, digits only (FILTER()ed in the dialplan)
# A forwarded call: REDIRECTING(from-num) as digits and REDIRECTING(reason) as a lower-case word,
# FILTER()ed in the dialplan; the inbound AGI gets them as `fwd` and `why` (only when forwarded).
FORWARDED_FROM = "VAIHDE_FWD"
FORWARDED_WHY = "VAIHDE_FWD_WHY"

# Rescue from a stalled AGI session (the guard, src/vaihde/guard/, or the AGI deadline): each
# context that runs AGI() has a `T` extension that takes the caller on (operator / "sorry").
# TIMEOUT(absolute) is the deadline: the dialplan arms it before AGI() and clears it after, the
# service pushes it out before each wait (SET AUTOHANGUP). AGIEXITONHANGUP=yes makes AGI() end
# at once on that timeout or on the guard's Redirect, instead of waiting for the frozen server.
MAIN_CONTEXT = "vaihde-main"
FEATURE_CONTEXT = "vaihde-feature"
AGI_CONTEXTS = (MAIN_CONTEXT, FEATURE_CONTEXT)
RESCUE_EXTEN = "T"
RESCUE = "VAIHDE_RESCUE"  # set by the guard before its Redirect: the reason the T extension gives
RESCUE_STALLED = "agi-stalled"  # the guard's reason; the deadline's is "agi-deadline"
AGI_DEADLINE_GLOBAL = "VAIHDE_AGI_DEADLINE"  # seconds armed before AGI() (default 5)
DEFAULT_AGI_DEADLINE_S = 5

# Dialplan globals: site settings that the fallback path needs while the service is down.
AGI_URL_GLOBAL = "VAIHDE_AGI"
OPERATORS_GLOBAL = "VAIHDE_OPERATORS"
OPERATOR_TIMEOUT_GLOBAL = "VAIHDE_OPERATOR_TIMEOUT"
QUEUE_GLOBAL = "VAIHDE_QUEUE"  # the answering-service queue of operators; "" = none
QUEUE_WAIT_GLOBAL = "VAIHDE_QUEUE_WAIT"
DEFAULT_QUEUE = "vaihde-switchboard"  # config/asterisk/queues-vaihde.conf

# AGI script names the dialplan calls: ${VAIHDE_AGI}/<script>.
SCRIPT_INBOUND = "inbound"
SCRIPT_FEATURE = "feature"  # ?code=*71&device=PJSIP/anna (device optional)


class Route(StrEnum):
    """Values of VAIHDE_ROUTE that [vaihde-main] acts on; anything else reaches the operator."""

    DIAL = "dial"
    QUEUE = "queue"  # a team's own queue (VAIHDE_TEAM_QUEUE), then the operators
    OPERATOR = "operator"
    FALLBACK = "fallback"
    HANGUP = "hangup"  # only where the admin configured a goodbye (e.g. after hours)

# Operator console (dialplan/vaihde-console.conf). The service moves a caller's channel into
# these contexts with AMI Redirect after setting the variables below with AMI Setvar; every
# value is built by the service from validated configuration or user records.
CONSOLE_ANSWER_CONTEXT = "vaihde-console-answer"  # ring CONSOLE_DIAL (an operator's phone)
CONSOLE_TRANSFER_CONTEXT = "vaihde-console-transfer"  # ring CONSOLE_DIAL, bounce back if unanswered
CONSOLE_BOUNCE_CONTEXT = "vaihde-console-bounce"  # ring CONSOLE_BACK (the transferring operator)
CONSOLE_HOLD_CONTEXT = "vaihde-console-hold"  # the caller waits while the operator consults
CONSOLE_CONSULT_CONTEXT = "vaihde-console-consult"  # the operator's phone rings the target
CONSOLE_RETURN_CONTEXT = "vaihde-console-return"  # the operator's phone back to the held caller
OPERATOR_CONTEXT = "vaihde-operator"  # the path to a human (dialplan/vaihde.conf)
CONSOLE_DIAL = "VAIHDE_CONSOLE_DIAL"  # Dial() device string(s) to ring
CONSOLE_RING = "VAIHDE_CONSOLE_RING"  # seconds to ring CONSOLE_DIAL
# A team in order: CONSOLE_DIAL2 / CONSOLE_RING2 … 8 rung after CONSOLE_DIAL (first empty ends);
# a team with its own queue: CONSOLE_QUEUE instead ([vaihde-console-ring]).
CONSOLE_QUEUE = "VAIHDE_CONSOLE_QUEUE"
CONSOLE_BACK = "VAIHDE_CONSOLE_BACK"  # the transferring operator's phone (bounce-back)
CONSOLE_BACK_RING = "VAIHDE_CONSOLE_BACK_RING"  # seconds to ring it
CONSOLE_HELD = "VAIHDE_CONSOLE_HELD"  # attended transfer: the held caller's channel name
CONSOLE_DONE = "VAIHDE_CONSOLE_DONE"  # 1: an attended transfer was completed (hang up after)
CONSOLE_BY = "VAIHDE_CONSOLE_BY"  # the operator's username (for logs and the board)
# UserEvent(VaihdeConsole) from the console dialplan: Kind=bounced|consult-failed, Why=DIALSTATUS.
CONSOLE_USEREVENT = "VaihdeConsole"
