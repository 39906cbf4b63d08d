"""The guard: a process of its own that takes callers out of a frozen service's AGI session.

Asterisk waits forever for a connected FastAGI server's next command (res/res_agi.c, run_agi).
The guard follows every vaihde AGI session in Asterisk's own AMI events and, when Asterisk has
waited for the service longer than `stall_s`, sends the channel to the `T` extension of the
context it is in (the dialplan's rescue: the operator path). It needs nothing from the service,
so a service stopped by SIGSTOP, a blocked event loop or a paused VM cannot hold a caller.
"""

from vaihde.guard.watch import AgiWatch, Stalled

__all__ = ["AgiWatch", "Stalled"]
