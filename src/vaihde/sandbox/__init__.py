"""The Asterisk sandbox: a cached Debian-sid chroot with Asterisk 22 and instances run from it.

Stdlib only, so that `scripts/sandbox` works before the project's dependencies are installed.
"""

from .chroot import SandboxError, asterisk_pids, build, find_mirror, is_built, sandbox_root
from .instance import (
    Endpoint,
    Instance,
    InstanceSettings,
    list_instances,
    load_instance,
    render_config,
    stop_all,
)

__all__ = [
    "Endpoint",
    "Instance",
    "InstanceSettings",
    "SandboxError",
    "asterisk_pids",
    "build",
    "find_mirror",
    "is_built",
    "list_instances",
    "load_instance",
    "render_config",
    "sandbox_root",
    "stop_all",
]
