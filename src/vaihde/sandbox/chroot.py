"""Build and locate the Debian-unstable chroot that holds the sandbox Asterisk.

Debian 12 ships no Asterisk, so we debootstrap sid (which has Asterisk 22) once and cache it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/var/cache/vaihde/sandbox-sid")
ROOT_ENV = "VAIHDE_SANDBOX_ROOT"
# Lets a developer point at a nearer mirror without editing apt's sources.
MIRROR_ENV = "VAIHDE_SANDBOX_MIRROR"
MARKER_NAME = ".vaihde-sandbox-ready"
# Bump when the build recipe changes so that old caches are rebuilt instead of reused.
RECIPE_VERSION = 2
SUITE = "sid"
PACKAGES = ("asterisk", "asterisk-core-sounds-en-gsm", "asterisk-moh-opsound-gsm")
# The package's dirs belong to the chroot's asterisk uid; we run Asterisk as root inside.
ASTERISK_DIRS = ("etc/asterisk", "var/lib/asterisk", "var/log/asterisk", "var/spool/asterisk")

# Codenames and aliases of the Debian archive; used to tell it apart from third-party repos
# (nodesource, cloud SDKs, ...) that also sit in sources.list.d.
_DEBIAN_SUITES = frozenset(
    {
        "stable", "oldstable", "oldoldstable", "testing", "unstable", "experimental", "sid",
        "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke",
    }
)  # fmt: skip
_URI_SCHEMES = ("http://", "https://", "ftp://", "file:/")

Log = Callable[[str], None]


class SandboxError(Exception):
    """A failure with a message meant for the user; the CLI prints it and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _print(line: str) -> None:
    print(line, flush=True)


def sandbox_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The chroot path: explicit argument, else $VAIHDE_SANDBOX_ROOT, else the default cache."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ROOT_ENV)
    return Path(env) if env else DEFAULT_ROOT


# --- apt sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    """One (type, URI, suites) entry from the machine's apt configuration."""

    types: tuple[str, ...]
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...] = ()
    origin: str = ""

    def is_debian_main(self) -> bool:
        """True for the main Debian archive (not security, not a third-party repo)."""
        if "deb" not in self.types or not self.uri.startswith(_URI_SCHEMES):
            return False
        bases = [s.split("/")[0].split("-")[0] for s in self.suites]
        if any(s.split("/")[0].endswith("-security") for s in self.suites):
            return False
        return any(b in _DEBIAN_SUITES for b in bases)


def parse_deb822(text: str, origin: str = "") -> list[AptSource]:
    """Parse a deb822 .sources file (stanzas separated by blank lines)."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:  # continuation line
                fields[key] += " " + raw.strip()
                continue
            key, sep, value = raw.partition(":")
            if not sep:
                key = None
                continue
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "uris" not in fields:
            continue
        types = tuple(fields.get("types", "").split())
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        for uri in fields["uris"].split():
            sources.append(AptSource(types, uri.rstrip("/"), suites, components, origin))
    return sources


def parse_one_line(text: str, origin: str = "") -> list[AptSource]:
    """Parse the classic one-line format: `deb [options] URI suite [component ...]`."""
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # options such as [arch=amd64 signed-by=...]
        parts = line.split()
        if len(parts) < 3 or parts[0] not in ("deb", "deb-src"):
            continue
        sources.append(
            AptSource((parts[0],), parts[1].rstrip("/"), (parts[2],), tuple(parts[3:]), origin)
        )
    return sources


def read_apt_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    """All apt sources on this machine, sources.list first, then sources.list.d in name order."""
    sources: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += parse_one_line(main_list.read_text(errors="replace"), str(main_list))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".sources":
                sources += parse_deb822(path.read_text(errors="replace"), str(path))
            elif path.suffix == ".list":
                sources += parse_one_line(path.read_text(errors="replace"), str(path))
    return sources


def choose_mirror(sources: Iterable[AptSource]) -> str | None:
    """The URI of the main Debian archive among `sources`, preferring a plain-codename entry."""
    candidates = [s for s in sources if s.is_debian_main()]
    # An entry listing the bare codename (bookworm) is the archive itself; -updates/-backports
    # entries normally share its URI, but take the plain one when they differ.
    candidates.sort(key=lambda s: not any("-" not in x for x in s.suites))
    return candidates[0].uri if candidates else None


def find_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The mirror to debootstrap from: $VAIHDE_SANDBOX_MIRROR, else this machine's apt config."""
    env = os.environ.get(MIRROR_ENV)
    if env:
        return env.rstrip("/")
    mirror = choose_mirror(read_apt_sources(apt_dir))
    if mirror is None:
        raise SandboxError(
            f"no Debian mirror found in {apt_dir}/sources.list or {apt_dir}/sources.list.d/ "
            f"(looked for a 'deb' entry of the main Debian archive); set {MIRROR_ENV}=<url>"
        )
    return mirror


# --- building ----------------------------------------------------------------------------------


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise SandboxError(f"{what} needs root (for chroot); run it as root, e.g. with sudo")


def find_debootstrap() -> str:
    # sbin is often missing from a non-login PATH, so look there explicitly.
    found = shutil.which("debootstrap") or shutil.which(
        "debootstrap", path="/usr/sbin:/sbin:/usr/local/sbin"
    )
    if not found:
        raise SandboxError(
            "debootstrap is not installed: run `apt-get install debootstrap` "
            "(./scripts/setup installs it)"
        )
    return found


def read_marker(root: Path) -> dict[str, object] | None:
    """The build record of a finished chroot, or None if `root` is missing, partial or outdated."""
    try:
        data = json.loads((root / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("recipe") != RECIPE_VERSION:
        return None
    return data


def is_built(root: Path | None = None) -> bool:
    return read_marker(sandbox_root(root)) is not None


def asterisk_version(root: Path) -> str:
    """`asterisk -V` inside the chroot; raises if the binary cannot run."""
    try:
        proc = subprocess.run(
            ["chroot", str(root), "asterisk", "-V"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"cannot run asterisk -V in {root}: {exc}") from exc
    if proc.returncode != 0 or not proc.stdout.startswith("Asterisk"):
        raise SandboxError(
            f"asterisk -V failed in {root} (exit {proc.returncode}): {proc.stdout}{proc.stderr}"
        )
    return proc.stdout.strip()


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    mounts = []
    with contextlib.suppress(OSError), open("/proc/self/mounts") as f:
        for line in f:
            target = line.split()[1].encode().decode("unicode_escape")
            if target.startswith(prefix):
                mounts.append(target)
    return mounts


def remove_tree(path: Path) -> None:
    """rm -rf of a (partial) chroot, unmounting first.

    A killed debootstrap can leave /proc or /sys mounted inside; rmtree would walk into them.
    """
    if not path.exists() and not path.is_symlink():
        return
    for target in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)
    if _mounts_under(path):
        raise SandboxError(f"{path} still has mounts under it; unmount them and remove it by hand")
    shutil.rmtree(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_temps(root: Path, log: Log) -> None:
    for tmp in root.parent.glob(f".{root.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            log(f"removing leftover {tmp}")
            remove_tree(tmp)


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    # Two builds at once (demo and tests started together) would both debootstrap; the second
    # waits here and then finds the marker.
    lock_path = root.parent / f".{root.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fix_permissions(root: Path) -> None:
    """Hand Asterisk's directories to root and create the run dir the package leaves out."""
    for rel in ASTERISK_DIRS:
        top = root / rel
        if not top.exists():
            continue
        os.chown(top, 0, 0, follow_symlinks=False)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), 0, 0, follow_symlinks=False)
    # var/run is a symlink to /run in the chroot; resolve it inside the chroot, not on the host.
    run = root / "run" if (root / "var/run").is_symlink() else root / "var/run"
    (run / "asterisk").mkdir(parents=True, exist_ok=True)
    (root / "vaihde").mkdir(exist_ok=True)


def _run_streaming(cmd: list[str], log: Log, started: float) -> int:
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            log(f"[{time.monotonic() - started:6.1f}s] {line.rstrip()}")
        return proc.wait()
    except BaseException:
        # Ctrl-C: take debootstrap (and its dpkg children) down with us.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise


def build(root: str | os.PathLike[str] | None = None, log: Log = _print) -> dict[str, object]:
    """Build the chroot unless a finished one is already there; return its build record.

    Builds into a temp dir next to the target and renames it into place, so a crash never leaves
    a half-built chroot where later calls would take it for a good one.
    """
    target = sandbox_root(root)
    marker = read_marker(target)
    if marker is not None:
        return marker
    require_root("building the sandbox")
    debootstrap = find_debootstrap()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(target):
        marker = read_marker(target)
        if marker is not None:  # another process finished it while we waited
            return marker
        _clean_stale_temps(target, log)
        _refuse_if_running(target)
        mirror = find_mirror()
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        remove_tree(tmp)
        started = time.monotonic()
        log(f"building sandbox chroot {target} (Debian {SUITE}, {' '.join(PACKAGES)})")
        log(f"using mirror {mirror}")
        cmd = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(tmp),
            mirror,
        ]
        try:
            rc = _run_streaming(cmd, log, started)
            if rc != 0:
                hint = tmp / "debootstrap" / "debootstrap.log"
                raise SandboxError(f"debootstrap failed (exit {rc}); see {hint} if it exists")
            fix_permissions(tmp)
            version = asterisk_version(tmp)
            record: dict[str, object] = {
                "recipe": RECIPE_VERSION,
                "suite": SUITE,
                "packages": list(PACKAGES),
                "mirror": mirror,
                "asterisk": version,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "build_seconds": round(time.monotonic() - started, 1),
            }
            (tmp / MARKER_NAME).write_text(json.dumps(record, indent=2) + "\n")
            _replace(tmp, target, log)
        except BaseException:
            with contextlib.suppress(SandboxError, OSError):
                remove_tree(tmp)
            raise
        log(f"[{time.monotonic() - started:6.1f}s] sandbox ready: {version}")
        return record


def _refuse_if_running(target: Path) -> None:
    running = asterisk_pids(target) if target.exists() else []
    if running:
        raise SandboxError(
            f"the outdated sandbox at {target} still runs Asterisk (pids {running}); "
            "stop it with `scripts/sandbox stop-all` and build again"
        )


def _replace(tmp: Path, target: Path, log: Log) -> None:
    if target.exists() or target.is_symlink():
        # An outdated or partial chroot: move it aside first so the swap itself is one rename.
        _refuse_if_running(target)
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        log(f"replacing outdated {target}")
        os.rename(target, old)
        os.rename(tmp, target)
        remove_tree(old)
    else:
        os.rename(tmp, target)


# --- processes in the chroot -------------------------------------------------------------------


def asterisk_pids(root: Path | None = None) -> list[int]:
    """Pids of every asterisk process (daemons and -rx clients) whose root is the chroot."""
    real = os.path.realpath(sandbox_root(root))
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/root") != real:
                continue
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "asterisk":
                    continue
        except OSError:  # gone meanwhile, or not ours to look at
            continue
        pids.append(int(entry))
    return sorted(pids)


def main_build(root: Path | None = None) -> int:
    """`scripts/sandbox build`: build if needed and report what is there."""
    target = sandbox_root(root)
    already = is_built(target)
    record = build(target)
    if already:
        print(f"sandbox already built at {target}: {record.get('asterisk')}")
    else:
        print(f"sandbox built at {target}", file=sys.stderr)
    return 0
