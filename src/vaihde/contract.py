"""The contract between the service and dialplan/: channel variable names and their values.

Everything the dialplan reads from or hands to the service is named here and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum

# Set by the service before the AGI session ends; read by [vaihde-main] in dialplan/vaihde.conf.
ROUTE = "VAIHDE_ROUTE"
DIAL = "VAIHDE_DIAL"  # Dial() device string, built only from validated configuration
DIAL_TIMEOUT = "VAIHDE_DIAL_TIMEOUT"  # seconds
REASON = "VAIHDE_REASON"  # why the call went where it went; shown to the operator
CALL_ID = "VAIHDE_CALL_ID"  # the service's id for the call's story (inherited by dialled legs)
SOUGHT = "VAIHDE_SOUGHT"  # whom the caller tried to reach, "employee:anna" (AMI channelvars)

# Set by the dialplan.
DID = "VAIHDE_DID"  # the dialled company number, digits only (FILTER()ed in the dialplan)

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
    OPERATOR = "operator"
    FALLBACK = "fallback"
    HANGUP = "hangup"  # only where the admin configured a goodbye (e.g. after hours)
