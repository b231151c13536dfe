"""moto in server mode as a child process on 127.0.0.1.

moto's threaded server (Flask/werkzeug) is started through ``motochild``
(which adds what EC2 does and moto does not) with the running interpreter
on a free port and polled on ``GET /moto-api/``
until it answers (about 1 s here).  If it exits or stays silent for
``timeout`` seconds, it is killed and the tail of its log is raised, so a
missing ``moto[server]`` install reads as such instead of as a hanging test.

The child gets ``PR_SET_PDEATHSIG`` = SIGTERM on Linux: if the process that
started it dies without stopping it (kill -9 of a test worker), the kernel
ends moto too.  The signal is tied to the *thread* that forked, so start it
from a long-lived thread (the CLI's main thread does).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

__all__ = ["MotoServer", "free_port"]

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not glibc Linux: rely on stop() alone


def _moto_command() -> list[str]:
    beside = os.path.join(os.path.dirname(sys.executable), "moto_server")
    exe = beside if os.path.exists(beside) else shutil.which("moto_server")
    if exe is None:
        raise RuntimeError("moto_server not found: install 'moto[server]' "
                           "(the test extra of this project)")
    return [exe]


class MotoServer:
    """One moto server owned by this process.

    >>> moto = MotoServer(log_path="/tmp/moto.log").start()
    >>> moto.url      # "http://127.0.0.1:PORT"
    >>> moto.reset()  # forget every resource
    >>> moto.stop()
    """

    def __init__(self, log_path: str = os.devnull, port: int | None = None,
                 terminated_ttl: float | None = None):
        self.port = port or free_port()
        # Seconds a terminated instance stays listed (EC2: about an hour;
        # moto: forever).  Set: ``motochild`` prunes.
        self.terminated_ttl = terminated_ttl
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # moto imports for ~2 s on a quiet machine and 10-12 s on a loaded one
    # (two cores shared by several test processes): wait long enough for
    # the latter; a dead child still fails at once.
    START_TIMEOUT = 45.0

    def start(self, timeout: float = START_TIMEOUT) -> "MotoServer":
        if self.process is not None:
            raise RuntimeError("moto server already started")
        self._log = open(self.log_path, "ab")
        _moto_command()     # a clear error when moto[server] is missing
        # moto's server, in ``motochild``: its tag reads are lookups, and
        # with a TTL terminated instances are forgotten.
        command = [sys.executable, "-m", "tools.fakeaws.motochild"]
        if self.terminated_ttl is not None:
            command += ["--terminated-ttl", str(self.terminated_ttl)]
        self.process = subprocess.Popen(
            command + ["-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto server did not start on port {self.port}:"
                           f"\n{self._log_tail()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/moto-api/",
                                        timeout=1) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float | None:
        """CPU seconds (user + system) moto used so far; None when it is
        not running.  On a shared machine this says what moto's own work
        cost when its wall time says mostly how busy the machine was."""
        import psutil
        proc = self.process
        if proc is None or proc.poll() is not None:
            return None
        try:
            times = psutil.Process(proc.pid).cpu_times()
        except psutil.Error:
            return None
        return times.user + times.system

    def reset(self) -> None:
        """Forget every resource in every region (moto's reset API)."""
        req = urllib.request.Request(self.url + "/moto-api/reset",
                                     method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log:
            self._log.close()
            self._log = None
