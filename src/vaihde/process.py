"""Child processes that must not outlive their parent (the sandbox Asterisk, the guard)."""

from __future__ import annotations

import signal


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child when the parent dies, even by SIGKILL
    (Linux PR_SET_PDEATHSIG)."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
