"""SSH host-key scanning of freshly launched nodes, with bounded concurrency.

A node is only READY once Zuul can trust its host keys, so the launcher asks
the node's SSH server for them as upstream Nodepool's nodescan does: one SSH
key exchange per host-key algorithm of paramiko's ``SecurityOptions``
(``DEFAULT_KEY_TYPES``), in that order, offering only that algorithm and
stopping short of authentication.  Every key that comes back is kept, so an
RSA key is listed once per RSA signature algorithm (``rsa-sha2-512`` and
``rsa-sha2-256``): Zuul gets the very list upstream would store.

Only ``ssh`` and ``network_cli`` nodes have host keys to gather
(``gathers_host_keys``); for any other connection type (``winrm``, ...)
``probe_port`` just waits for the port to accept a TCP connection and the
node has no host keys.

Failure story:

* A freshly booted VM refuses connections, times out or drops the
  connection mid-banner for a while (sshd not up yet, cloud-init
  regenerating keys).  ``keyscan`` and ``probe_port`` raise
  ``KeyscanUnreachable`` for those, and ``KeyscanPool`` retries them with
  short back-off until the caller's deadline (the node's boot timeout),
  without holding a worker thread while it waits.
* A server that lacks one of the asked-for key types is normal; it is only
  an error when the server offers none of them (``KeyscanError``, not
  retried).  Anything that is not SSH on the port is ``KeyscanError`` too.
* Every error is a ``LaunchError`` with ``stat_key = "error.keyscan"``, so
  the launcher counts it as a failed attempt without knowing about SSH.

    KeyscanError(LaunchError)       permanent: no usable key, not SSH
    └── KeyscanUnreachable          refused / timed out / dropped: retry

Threads: each key exchange runs on a paramiko transport thread of its own
(started and closed by ``keyscan``); ``KeyscanPool`` runs attempts on its
worker threads and keeps waiting retries on one scheduler thread.
"""

from __future__ import annotations

import collections
import functools
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
    "GATHER_HOST_KEYS",
    "KeyscanError",
    "KeyscanUnreachable",
    "KeyscanPool",
    "keyscan",
    "check_connection",
    "gathers_host_keys",
    "port_open",
    "probe_port",
    "scan_failure",
    "scan_host",
]

log = logging.getLogger("nodepool.keyscan")

# paramiko logs a traceback at ERROR for every failed exchange, including
# the expected "server has no key of this type".  keyscan reports failures
# as exceptions itself, so its transports log to a channel that is quiet
# unless the operator's logging config asks for it.
_TRANSPORT_LOG = "nodepool.keyscan.paramiko"
if logging.getLogger(_TRANSPORT_LOG).level == logging.NOTSET:
    logging.getLogger(_TRANSPORT_LOG).setLevel(logging.CRITICAL)

# Connection types whose nodes have SSH host keys (as upstream; any other
# type, e.g. winrm, only needs its port to accept TCP).
GATHER_HOST_KEYS: frozenset[str] = frozenset({"ssh", "network_cli"})


def gathers_host_keys(connection_type: str | None) -> bool:
    """Whether nodes of ``connection_type`` get their host keys scanned."""
    return connection_type in GATHER_HOST_KEYS


@functools.cache
def _paramiko_key_types() -> tuple[str, ...]:
    """paramiko's host-key algorithms, in its order of preference.

    Read through ``SecurityOptions`` of a transport that never connects,
    exactly where upstream's nodescan takes its list from.
    """
    with socket.socket() as sock:
        transport = paramiko.Transport(sock)
        try:
            return tuple(paramiko.transport.SecurityOptions(
                transport).key_types)
        finally:
            transport.close()


DEFAULT_KEY_TYPES: tuple[str, ...] = _paramiko_key_types()

# Key exchanges with one host at a time: overlapping them keeps a scan of
# six key types about as fast as three in a row used to be, while staying
# well below sshd's MaxStartups (10) and a network device's few VTY lines.
EXCHANGES_PER_HOST = 3

# A key type that is not itself a host-key algorithm paramiko negotiates:
# "ssh-rsa" (the key's name) asks for the RSA key with either SHA-2
# signature algorithm, in one exchange.
_NEGOTIATE: dict[str, tuple[str, ...]] = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


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


class _Exchange:
    """One key exchange in flight, offering only ``key_type``.

    Construction connects and starts paramiko's transport thread; ``key``
    waits for the exchange and returns "<name> <base64>".  Always
    ``close()`` it.
    """

    def __init__(self, host: str, port: int, key_type: str,
                 deadline: float) -> None:
        self.host, self.port, self.key_type = host, port, key_type
        self.deadline = deadline
        offered = list(_NEGOTIATE.get(key_type, (key_type,)))
        sock = _connect(host, port, deadline - time.monotonic())
        try:
            self.transport = paramiko.Transport(sock)
        except BaseException:
            sock.close()
            raise
        self.transport.set_log_channel(_TRANSPORT_LOG)
        self.done = threading.Event()
        try:
            try:
                self.transport.get_security_options().key_types = offered
            except ValueError as e:
                raise KeyscanError(
                    f"unknown host key type {key_type!r}") from e
            remaining = max(deadline - time.monotonic(), 0.001)
            self.transport.banner_timeout = remaining
            self.transport.handshake_timeout = remaining
            self.transport.start_client(event=self.done)
        except BaseException:
            self.close()
            raise

    def key(self) -> str:
        remaining = max(self.deadline - time.monotonic(), 0.001)
        self.done.wait(remaining)
        transport = self.transport
        error = transport.get_exception()
        if error is not None or not transport.is_active():
            _raise_for(self.host, self.port, error, transport.remote_version)
        if not self.done.is_set():
            raise KeyscanUnreachable(
                f"{self.host} port {self.port}: no SSH key exchange within "
                f"{remaining:.1f}s")
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"

    def close(self) -> None:
        self.transport.close()


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
    """Return the server's host keys as ``"<name> <base64>"`` strings.

    ``timeout`` (seconds) bounds the whole scan, every key type included.
    One key per key type the server has, in ``key_types`` order (default
    ``DEFAULT_KEY_TYPES``), duplicates kept (an RSA key signs with two of
    the default types); types the server lacks are skipped.  Raises
    ``KeyscanUnreachable`` when the server cannot be reached or drops the
    connection, ``KeyscanError`` when it is not SSH or has none of the types.
    """
    types = list(key_types or DEFAULT_KEY_TYPES)
    deadline = time.monotonic() + timeout
    keys: list[str] = []
    lacking: list[str] = []
    # Up to EXCHANGES_PER_HOST exchanges overlap (the server's fork and
    # crypto, and the round trips, dominate a scan); results are taken in
    # key-type order, so the list and the first error are as if one ran
    # after the other.
    in_flight: collections.deque[_Exchange] = collections.deque()
    try:
        while types or in_flight:
            while types and len(in_flight) < EXCHANGES_PER_HOST:
                in_flight.append(_Exchange(host, port, types.pop(0),
                                           deadline))
            exchange = in_flight.popleft()
            try:
                keys.append(exchange.key())
            except _NoSuchKeyType:
                lacking.append(exchange.key_type)
            finally:
                exchange.close()
    finally:
        for exchange in in_flight:
            exchange.close()
    if not keys:
        raise KeyscanError(f"{host} port {port}: server offers none of the "
                           f"host key types {', '.join(lacking)}")
    return keys


def check_connection(host: str, port: int = 22, timeout: float = 5.0) -> bool:
    """True when ``host:port`` accepts TCP and sends an SSH banner in time.

    The static driver's liveness check of SSH hosts: cheaper than a
    keyscan, and enough to tell a dead host from a live one (hosts of other
    connection types are checked with ``port_open``).
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


def probe_port(host: str, port: int, timeout: float = 10.0) -> list[str]:
    """``[]`` once ``host:port`` accepts a TCP connection (nothing is sent).

    How nodes whose connection type has no host keys (``winrm``...) are
    checked, as upstream does.  Raises ``KeyscanUnreachable`` when the
    connection is refused or times out.
    """
    _connect(host, port, timeout).close()
    return []


def port_open(host: str, port: int, timeout: float = 5.0) -> bool:
    """True when ``host:port`` accepts a TCP connection within ``timeout``."""
    try:
        probe_port(host, port, timeout)
    except KeyscanError:
        return False
    return True


def scan_host(host: str, port: int, connection_type: str | None,
              timeout: float = 10.0) -> list[str]:
    """One scan of a node of ``connection_type``, in this thread: its host
    keys (``keyscan``) or, for a type without host keys, ``[]`` once its
    port accepts TCP (``probe_port``).  Raises ``KeyscanError``."""
    if gathers_host_keys(connection_type):
        return keyscan(host, port, timeout=timeout)
    return probe_port(host, port, timeout)


def scan_failure(connection_type: str | None, error: BaseException) -> str:
    """The line naming a failed scan of a node of ``connection_type``:
    ``keyscan failed: ...``, or ``winrm port check failed: ...`` for a
    type without host keys."""
    what = ("keyscan" if gathers_host_keys(connection_type)
            else f"{connection_type} port check")
    return f"{what} failed: {error}"


ScanFunc = Callable[[str, int, float], list[str]]


class _Job:
    """One submitted scan: its future, its deadline and its back-off."""

    def __init__(self, future: Future, scan: ScanFunc, host: str, port: int,
                 timeout: float, retry_until: float | None, backoff: float
                 ) -> None:
        self.future = future
        self.scan = scan
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
    it is waiting to retry.  ``scan`` is the function doing one attempt;
    ``probe`` the one used instead for a submission with
    ``gather_host_keys=False`` (a node whose connection type has no host
    keys: only its port must accept TCP).
    """

    def __init__(self, workers: int = 16, name: str = "keyscan", *,
                 scan: ScanFunc | None = None, probe: ScanFunc | None = None,
                 min_backoff: float = 0.25, max_backoff: float = 2.0) -> None:
        self.name = name
        self._scan = scan or keyscan
        self._probe = probe or probe_port
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
               retry_until: float | None = None,
               gather_host_keys: bool = True) -> Future:
        """Scan ``host:port``; the future yields the key list or raises.

        With ``gather_host_keys=False`` the port only has to accept a TCP
        connection, and the future yields ``[]``.
        """
        future: Future = Future()
        scan = self._scan if gather_host_keys else self._probe
        job = _Job(future, scan, host, port, timeout, retry_until,
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
            keys = job.scan(job.host, job.port, attempt_timeout)
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
