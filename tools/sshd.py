"""Run a real OpenSSH server (Debian ``openssh-server``) on loopback.

Used by the keyscan tests, the static-driver liveness tests and the demo.
The server generates its own host keys into a directory the caller owns
(kept across ``stop()``/``start()`` so a restarted server presents the same
keys), listens only on 127.0.0.1 and never reads ``/etc/ssh``.

``MaxStartups 200`` matters: the default ``10:30:100`` starts dropping
unauthenticated connections at random once ten are open, which makes
parallel keyscans fail for reasons that have nothing to do with the code
under test.

If the server does not send an SSH banner within the start timeout the
process is killed and the tail of its log is included in the raised error,
so a missing package or a bad config is reported as such instead of as a
hanging test.  This module deliberately does not import ``nodepool``: the
harness must not depend on the code it is used to test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"

# ssh-keygen's -t name, and extra arguments that keep generation fast.
_KEYGEN_ARGS = {
    "ed25519": [],
    "ecdsa": ["-b", "256"],
    "rsa": ["-b", "2048"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_banner(port: int, timeout: float = 1.0) -> str | None:
    """Return the server's ``SSH-...`` identification line, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=timeout) as s:
            data = b""
            while b"\n" not in data and len(data) < 1024:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].decode(errors="replace").strip()
    return line if line.startswith("SSH-") else None


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal sshd and its per-connection children (its own session)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class SSHServer:
    """One sshd owned by this process, listening on 127.0.0.1.

    >>> server = SSHServer("/tmp/sshd")      # keys are made on first start
    >>> with server:
    ...     server.port                      # the listening port
    ...     server.host_keys                 # ["ssh-ed25519 AAAA...", ...]
    >>> server.start(); server.kill()        # liveness tests: down, then
    >>> server.start()                       # up again on the same port
    """

    def __init__(self, workdir: str, port: int | None = None,
                 key_types: tuple[str, ...] = ("ed25519", "rsa", "ecdsa")):
        unknown = [t for t in key_types if t not in _KEYGEN_ARGS]
        if unknown:
            raise ValueError(f"unsupported host key types: {unknown}")
        self.workdir = os.path.abspath(workdir)
        self.key_types = tuple(key_types)
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, "sshd.log")

    def _key_path(self, key_type: str) -> str:
        return os.path.join(self.workdir, f"ssh_host_{key_type}_key")

    @property
    def host_keys(self) -> list[str]:
        """``"<type> <base64>"`` for every host key, in ``key_types`` order."""
        keys = []
        for key_type in self.key_types:
            with open(self._key_path(key_type) + ".pub") as f:
                fields = f.read().split()
            keys.append(f"{fields[0]} {fields[1]}")
        return keys

    def _make_host_keys(self) -> None:
        for key_type in self.key_types:
            path = self._key_path(key_type)
            if os.path.exists(path):
                continue
            subprocess.run(
                [SSH_KEYGEN, "-q", "-t", key_type, *_KEYGEN_ARGS[key_type],
                 "-N", "", "-C", f"nodepool-test-{key_type}", "-f", path],
                check=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def _write_config(self) -> str:
        lines = [
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            *(f"HostKey {self._key_path(t)}" for t in self.key_types),
            f"PidFile {os.path.join(self.workdir, 'sshd.pid')}",
            "AuthorizedKeysFile "
            f"{os.path.join(self.workdir, 'authorized_keys')}",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            # The workdir lives under /tmp, which sshd would reject.
            "StrictModes no",
            "UseDNS no",
            "MaxStartups 200",
            "LogLevel INFO",
        ]
        path = os.path.join(self.workdir, "sshd_config")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 15.0) -> "SSHServer":
        if self.process is not None:
            raise RuntimeError("sshd already started")
        if not os.path.exists(SSHD) or not shutil.which(SSH_KEYGEN):
            raise RuntimeError("OpenSSH is not installed (need Debian package "
                               "'openssh-server')")
        os.makedirs(self.workdir, exist_ok=True)
        # sshd refuses to start without its privilege-separation directory.
        os.makedirs("/run/sshd", exist_ok=True)
        self._make_host_keys()
        for _ in range(3):
            if self._spawn(timeout):
                return self
            if self._fixed_port:
                break
            # Someone else took our free port between probing and binding.
            self.port = free_port()
        with open(self.log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"sshd did not start on port {self.port}:\n{tail}")

    def _spawn(self, timeout: float) -> bool:
        cfg = self._write_config()
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", cfg],
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if read_banner(self.port) is not None:
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()

    def kill(self) -> None:
        """Kill -9 (liveness tests); ``start()`` may be called again after."""
        proc, self.process = self.process, None
        if proc is not None:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> "SSHServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
