"""`vaihde serve` in a process of its own, as in production (uvloop, gc.freeze, the guard as its
child): for tests and benchmarks that stop, freeze or kill the service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from vaihde.process import die_with_parent

from .chroot import SandboxError


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class ServiceProcess:
    """One `vaihde serve --config SETTINGS` process; its log goes to `log_path`."""

    def __init__(self, settings_path: Path, log_path: Path, *, log_format: str = "json",
                 env: dict[str, str] | None = None) -> None:
        self.settings_path = settings_path
        self.log_path = log_path
        self.log_format = log_format
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, tie_to_parent: bool = False) -> None:
        """tie_to_parent: the kernel SIGTERMs the service when the thread that called start()
        ends (a killed test run leaves no service behind); not for a service meant to outlive
        the process that started it."""
        # The settings file says everything: stray VAIHDE_* variables of the caller must not.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAIHDE_")}
        env.update(self.env, PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vaihde", "serve", "--config", str(self.settings_path),
                 "--log-format", self.log_format],
                cwd=self.settings_path.parent, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent if tie_to_parent else None,
            )

    async def wait_healthy(self, http_port: int, timeout: float = 60.0) -> None:
        """Until /health says ok (FastAGI listening, AMI logged in)."""
        url = f"http://127.0.0.1:{http_port}/health"
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    code = self.proc.returncode if self.proc else None
                    raise SandboxError(f"vaihde exited with {code}:\n{tail(self.log_path)}")
                with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
                    async with http.get(url) as response:
                        if (await response.json()).get("status") == "ok":
                            return
                if time.monotonic() > deadline:
                    raise SandboxError(
                        f"vaihde not healthy within {timeout:.0f} s:\n{tail(self.log_path)}"
                    )
                await asyncio.sleep(0.1)

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its sockets open but answers nothing (a blocked event loop,
        a paused VM). Its children (the guard) keep running."""
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a crash would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
