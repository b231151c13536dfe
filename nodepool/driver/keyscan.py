"""SSH host-key scanning of freshly launched nodes, with bounded concurrency.

A node is only READY once Zuul can trust its host keys, so the launcher asks
the node's SSH server for them the way ``ssh-keyscan`` does: one SSH key
exchange per host-key type (a server proves only one key per exchange),
stopping short of authentication.

Failure story:

* A freshly booted VM refuses connections, times out or drops the
  connection mid-banner for a while (sshd not up yet, cloud-init
  regenerating keys).  ``keyscan`` raises ``KeyscanUnreachable`` for those,
  and ``KeyscanPool`` retries them with short back-off until the caller's
  deadline (the node's boot timeout), without holding a worker thread while
  it waits.
* A server that lacks one of the asked-for key types is normal; it is only
  an error when the server offers none of them (``KeyscanError``, not
  retried).  Anything that is not SSH on the port is ``KeyscanError`` too.
* Every error is a ``LaunchError`` with ``stat_key = "error.keyscan"``, so
  the launcher counts it as a failed attempt without knowing about SSH.

    KeyscanError(LaunchError)       permanent: no usable key, not SSH
    └── KeyscanUnreachable          refused / timed out / dropped: retry
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor

import paramiko

from nodepool.driver.errors import LaunchError

__all__ = [
    "DEFAULT_KEY_TYPES",
    "KeyscanError",
    "KeyscanUnreachable",
    "KeyscanPool",
    "keyscan",
    "check_connection",
]

log = logging.getLogger("nodepool.keyscan")

# paramiko logs a traceback at ERROR for every failed exchange, including
# the expected "server has no key of this type".  keyscan reports failures
# as exceptions itself, so its transports log to a channel that is quiet
# unless the operator's logging config asks for it.
_TRANSPORT_LOG = "nodepool.keyscan.paramiko"
if logging.getLogger(_TRANSPORT_LOG).level == logging.NOTSET:
    logging.getLogger(_TRANSPORT_LOG).setLevel(logging.CRITICAL)

DEFAULT_KEY_TYPES: tuple[str, ...] = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa")

# Host-key algorithms to offer when asking for a key type.  An RSA key is
# named "ssh-rsa" but negotiated with the SHA-2 signature algorithms; the
# SHA-1 "ssh-rsa" algorithm is disabled in current OpenSSH and paramiko.
_NEGOTIATE: dict[str, tuple[str, ...]] = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


# Everything paramiko might offer, so that "only this type" really is.
_ALL_HOST_KEY_ALGORITHMS: tuple[str, ...] = tuple(dict.fromkeys((
    *getattr(paramiko.Transport, "_preferred_keys", ()),
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa",
    "ssh-dss")))


class KeyscanError(LaunchError):
    """The host's SSH keys could not be obtained; the attempt failed."""

    stat_key = "error.keyscan"


class KeyscanUnreachable(KeyscanError):
    """Connection refused, timed out or dropped: the host may not be up yet."""


class _NoSuchKeyType(Exception):
    """The server has no host key of the type this exchange asked for."""


def _strip_brackets(host: str) -> str:
    # "[::1]" is how IPv6 literals appear next to a port; sockets want "::1".
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first address of ``host`` that answers."""
    try:
        # create_connection walks getaddrinfo, so IPv6 and IPv4 both work.
        return socket.create_connection((_strip_brackets(host), port),
                                        timeout=max(timeout, 0.001))
    except TimeoutError as e:
        raise KeyscanUnreachable(
            f"{host} port {port}: connect timed out after {timeout:.1f}s"
        ) from e
    except OSError as e:
        raise KeyscanUnreachable(
            f"{host} port {port}: {e.strerror or e}") from e


def _caused_by_io(exc: BaseException) -> bool:
    """True when an SSH failure was really the connection going away.

    paramiko wraps a socket timeout or EOF during the banner exchange in a
    plain SSHException; the original is kept as the context.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (OSError, EOFError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _scan_one(host: str, port: int, key_type: str, deadline: float) -> str:
    """One key exchange offering only ``key_type``; "<type> <base64>"."""
    offered = _NEGOTIATE.get(key_type, (key_type,))
    disabled = [k for k in _ALL_HOST_KEY_ALGORITHMS if k not in offered]
    sock = _connect(host, port, deadline - time.monotonic())
    try:
        transport = paramiko.Transport(
            sock, disabled_algorithms={"keys": disabled})
    except BaseException:
        sock.close()
        raise
    transport.set_log_channel(_TRANSPORT_LOG)
    try:
        remaining = max(deadline - time.monotonic(), 0.001)
        transport.banner_timeout = remaining
        transport.handshake_timeout = remaining
        done = threading.Event()
        transport.start_client(event=done)
        done.wait(remaining)
        error = transport.get_exception()
        if error is not None or not transport.is_active():
            _raise_for(host, port, error, transport.remote_version)
        if not done.is_set():
            raise KeyscanUnreachable(
                f"{host} port {port}: no SSH key exchange within "
                f"{remaining:.1f}s")
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    finally:
        transport.close()


def _raise_for(host: str, port: int, error: BaseException | None,
               remote_version: str) -> None:
    # From an SSH-2 server, IncompatiblePeer means an algorithm did not
    # match; offering a single host-key type, that is the type missing.
    if isinstance(error, paramiko.ssh_exception.IncompatiblePeer) \
            and remote_version.startswith(("SSH-2.0-", "SSH-1.99-")):
        raise _NoSuchKeyType(str(error)) from error
    if error is None or _caused_by_io(error):
        raise KeyscanUnreachable(
            f"{host} port {port}: connection lost during SSH handshake"
            + (f" ({error})" if error else "")) from error
    raise KeyscanError(f"{host} port {port}: SSH protocol error: {error}"
                       ) from error


def keyscan(host: str, port: int = 22, timeout: float = 10.0,
            key_types: Sequence[str] | None = None) -> list[str]:
    """Return the server's host keys as ``"<type> <base64>"`` strings.

    ``timeout`` (seconds) bounds the whole scan, every key type included.
    Keys come back in ``key_types`` order (default ``DEFAULT_KEY_TYPES``),
    without duplicates; types the server lacks are skipped.  Raises
    ``KeyscanUnreachable`` when the server cannot be reached or drops the
    connection, ``KeyscanError`` when it is not SSH or has none of the types.
    """
    types = tuple(key_types or DEFAULT_KEY_TYPES)
    deadline = time.monotonic() + timeout
    keys: list[str] = []
    lacking: list[str] = []
    for key_type in types:
        try:
            key = _scan_one(host, port, key_type, deadline)
        except _NoSuchKeyType:
            lacking.append(key_type)
            continue
        if key not in keys:
            keys.append(key)
    if not keys:
        raise KeyscanError(f"{host} port {port}: server offers none of the "
                           f"host key types {', '.join(lacking)}")
    return keys


def check_connection(host: str, port: int = 22, timeout: float = 5.0) -> bool:
    """True when ``host:port`` accepts TCP and sends an SSH banner in time.

    The static driver's liveness check: cheaper than a keyscan, and enough
    to tell a dead host from a live one.
    """
    deadline = time.monotonic() + timeout
    try:
        with _connect(host, port, timeout) as sock:
            data = b""
            # RFC 4253 lets a server send other lines before its banner.
            while len(data) < 8192:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                sock.settimeout(remaining)
                chunk = sock.recv(1024)
                if not chunk:
                    return False
                data += chunk
                lines = data.split(b"\n")
                if any(line.startswith(b"SSH-") for line in lines[:-1]):
                    return True
    except (KeyscanError, OSError):
        return False
    return False


ScanFunc = Callable[[str, int, float], list[str]]


class _Job:
    """One submitted scan: its future, its deadline and its back-off."""

    def __init__(self, future: Future, host: str, port: int, timeout: float,
                 retry_until: float | None, backoff: float) -> None:
        self.future = future
        self.host = host
        self.port = port
        self.timeout = timeout
        self.retry_until = retry_until
        self.backoff = backoff
        self.attempts = 0
        self.running = False
        self.started = time.monotonic()


class KeyscanPool:
    """Scans hosts in at most ``workers`` background threads.

    >>> pool = KeyscanPool(workers=16)
    >>> future = pool.submit("203.0.113.5", 22, timeout=10,
    ...                      retry_until=time.monotonic() + 300)
    >>> future.result()                     # ["ssh-ed25519 AAAA...", ...]
    >>> pool.shutdown()

    A scan that fails with ``KeyscanUnreachable`` is tried again after a
    back-off (``min_backoff`` doubling up to ``max_backoff`` seconds) for as
    long as ``time.monotonic()`` is before ``retry_until``.  Waiting scans
    sit in a timer heap owned by one scheduler thread, not in a worker, so a
    hundred booting VMs do not starve the scans of VMs that are already up.
    ``future.cancel()`` drops a scan (e.g. its node was deleted) even while
    it is waiting to retry.  ``scan`` is the function doing one attempt.
    """

    def __init__(self, workers: int = 16, name: str = "keyscan", *,
                 scan: ScanFunc | None = None, min_backoff: float = 0.25,
                 max_backoff: float = 2.0) -> None:
        self.name = name
        self._scan = scan or keyscan
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix=name)
        self._cond = threading.Condition()
        # (due time, tie-breaker, job): jobs waiting for their next attempt.
        self._waiting: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        # Every job whose future is not resolved yet, so shutdown can fail
        # the ones whose next attempt will now never run.
        self._jobs: set[_Job] = set()
        self._closed = False
        self._scheduler = threading.Thread(
            target=self._run_scheduler, name=f"{name}-scheduler", daemon=True)
        self._scheduler.start()

    def submit(self, host: str, port: int = 22, timeout: float = 10.0,
               retry_until: float | None = None) -> Future:
        """Scan ``host:port``; the future yields the key list or raises."""
        future: Future = Future()
        job = _Job(future, host, port, timeout, retry_until,
                   self._min_backoff)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self.name} pool is shut down")
            self._jobs.add(job)
            self._executor.submit(self._attempt, job)
        return future

    def _attempt(self, job: _Job) -> None:
        if job.future.cancelled():
            with self._cond:
                self._jobs.discard(job)
            return
        job.attempts += 1
        job.running = True
        try:
            self._attempt_once(job)
        finally:
            job.running = False

    def _attempt_once(self, job: _Job) -> None:
        attempt_timeout = job.timeout
        if job.retry_until is not None:
            # The last try must not run far past the caller's deadline.
            left = job.retry_until - time.monotonic()
            attempt_timeout = max(min(attempt_timeout, left), 0.5)
        try:
            keys = self._scan(job.host, job.port, attempt_timeout)
        except KeyscanUnreachable as e:
            if self._schedule_retry(job):
                log.debug("%s; retrying in %.2fs", e, job.backoff)
            else:
                self._finish(job, exception=self._gave_up(job, e))
        except BaseException as e:  # noqa: B036 - the future carries it
            self._finish(job, exception=e)
        else:
            self._finish(job, result=keys)

    def _schedule_retry(self, job: _Job) -> bool:
        """Queue the job's next attempt; False when its deadline forbids."""
        if job.attempts > 1:
            job.backoff = min(job.backoff * 2, self._max_backoff)
        now = time.monotonic()
        if job.retry_until is None or now >= job.retry_until:
            return False
        # One last try right at the deadline rather than none at all.
        due = min(now + job.backoff, job.retry_until)
        with self._cond:
            if self._closed:
                return False
            heapq.heappush(self._waiting, (due, next(self._seq), job))
            self._cond.notify_all()
        return True

    @staticmethod
    def _gave_up(job: _Job, error: KeyscanError) -> KeyscanError:
        if job.attempts == 1:
            return error
        waited = time.monotonic() - job.started
        wrapped = type(error)(f"{error} (gave up after {job.attempts} "
                              f"attempts in {waited:.1f}s)")
        wrapped.__cause__ = error
        return wrapped

    def _finish(self, job: _Job, result: list[str] | None = None,
                exception: BaseException | None = None) -> None:
        with self._cond:
            self._jobs.discard(job)
        try:
            if exception is not None:
                job.future.set_exception(exception)
            else:
                job.future.set_result(result)
        except InvalidStateError:
            pass  # cancelled by the caller while the attempt ran

    def _run_scheduler(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._due():
                    timeout = (self._waiting[0][0] - time.monotonic()
                               if self._waiting else None)
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, job = heapq.heappop(self._waiting)
                self._executor.submit(self._attempt, job)

    def _due(self) -> bool:
        return bool(self._waiting) and \
            self._waiting[0][0] <= time.monotonic()

    def shutdown(self, wait: bool = True) -> None:
        """Stop.  Attempts already running finish (``wait`` waits for them);
        scans queued or waiting to retry fail with ``KeyscanError``."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._waiting = []
            self._cond.notify_all()
        self._scheduler.join()
        self._executor.shutdown(wait=wait, cancel_futures=True)
        with self._cond:
            leftover = list(self._jobs)
        for job in leftover:
            # A running attempt resolves its own future when it returns.
            if not job.running:
                self._finish(job, exception=KeyscanError(
                    f"{self.name} pool shut down before {job.host} port "
                    f"{job.port} answered"))
