"""Drive one node from BUILDING to READY, FAILED or ABORTED.

A ``NodeLaunch`` owns the node's lock for the whole launch and is the only
writer of the node meanwhile.

Threads: a launch is advanced by its provider's loop thread
(``<provider>-loop``: ``advance`` and ``finished``), which never waits for a
cloud call: the create machine submits slow calls to the adapter's create
pool, the keyscan runs in the keyscan pool (a node whose connection type has
no SSH host keys, e.g. ``winrm``, only waits there for its port to accept
TCP), and a console log is read on a short-lived ``console-<node id>``
thread.  The node writes of the steps go out asynchronously (their reply is
checked on a later step), but some writes wait for ZooKeeper on the loop
thread: the create intent of a later attempt (``_make_machine``), the writes
after a failed attempt, an abort or a detached launch's end
(``_store_quietly``), and the offering record of a capacity error.
``detach()`` comes from the request handler's side (a pool worker's thread
letting go of the node); it and ``finished()`` are serialised by ``_lock``
(``detached``, ``_finished``).  ``session_lost()`` runs on the loop
thread too: kazoo's connection thread only tells the provider manager
(``ProviderManager.session_lost``), which hands the launches to its loop,
so a launch is never failed while it is being advanced.  Launch listeners
(``add_launch_listener``: a module-level list, changed without a lock) run
on the loop thread and must be quick; one that raises is logged and
ignored.

Failure story:
- a classified launch failure (``LaunchError``, timeouts, keyscan failure,
  an unexpected exception) ends the *attempt*: the partial instance is
  handed to the provider's deleter and a new attempt starts, until
  ``launch-retries`` attempts are spent, then the node is FAILED;
- ``QuotaError``/``CapacityError`` ABORT the node (not the launch's fault:
  the request handler pauses and replaces it); a ``CapacityError`` also
  marks the offering unavailable for every launcher
  (``nodepool.driver.offerings``), so the replacement goes elsewhere;
- ``ConfigurationError`` fails the node at once (retrying cannot help);
- ``ThrottledError``/``TransientError`` end the attempt like a launch
  failure: the driver's API client has already reported the throttle to
  its limiter and repeated the call as long as it should (the one layer
  that does, ``nodepool.driver.limitedapi``), so nothing is reported or
  repeated here; an ``AccessError`` repeats the same step later, within
  the launch timeout (the provider's access gate is its one layer);
- node writes go out asynchronously (the loop checks the reply on the next
  step); one that fails with ZooKeeper connection trouble is sent again
  after ``REWRITE_DELAY`` (within the launch timeout) instead of failing
  the attempt;
- a lost ZooKeeper session fails the node (``error.zksession``): the lock
  is gone, someone else may already be deleting it;
- a crash (kill -9): before each attempt's create call the intent
  (attempt, idempotency token, time) is stored in the node's
  ``driver_data["create"]``, and the instance id as soon as the cloud names
  it; the deleted-node worker later finds the orphaned ``building`` node
  and deletes it together with every instance tagged with its id.

Every finished attempt is reported to statsd and to the callbacks added
with ``add_launch_listener`` (the web app's launch counters, latency
histogram and recent errors).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from nodepool.driver import errors
from nodepool.driver.keyscan import gathers_host_keys, scan_failure
from nodepool.driver.statemachine import (
    LaunchSpec, RequestInfo, StateMachine, launch_token)
from nodepool.zk import errors as zk_errors
from nodepool.zk.models import Node, NodeState

# After ZooKeeper trouble a node write is sent again after this long.
REWRITE_DELAY = 0.5


@dataclass(frozen=True)
class LaunchEvent:
    """One finished launch attempt, as given to launch listeners."""

    manager: Any              # the ProviderManager that ran the launch
    provider: str
    node_id: str | None
    result: str               # "ready" or a cli.md §4 "error.<kind>"
    elapsed: float            # seconds since the first attempt started
    message: str | None       # the failure, None when ready
    time: float               # epoch seconds


_listeners: list[Callable[[LaunchEvent], None]] = []


def add_launch_listener(callback: Callable[[LaunchEvent], None]) -> None:
    _listeners.append(callback)


def remove_launch_listener(callback: Callable[[LaunchEvent], None]) -> None:
    try:
        _listeners.remove(callback)
    except ValueError:
        pass


class Outcome(enum.Enum):
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    ABORTED = "aborted"


class _Phase(enum.Enum):
    CREATE = "create"
    KEYSCAN = "keyscan"
    DONE = "done"


class LaunchFailed(Exception):
    """One attempt failed; ``stat_key`` names the launch-result metric."""

    def __init__(self, message: str, stat_key: str = "error.unknown"):
        super().__init__(message)
        self.stat_key = stat_key


def record_intent(node: Node, attempt: int,
                  installation: str | None = None) -> None:
    """Put the create intent of ``attempt`` into ``node.driver_data``; the
    caller stores the node before the create call.

    After a crash the node is found ``building``; the intent tells the
    deleter that an instance may exist even without an ``external_id``
    (the call may have completed after we died), so it looks the instance
    up by its node tag instead of leaking it.  The request handler records
    the first attempt's intent in the same transaction that locks the new
    node; later attempts are recorded by the launcher.
    """
    data = node.driver_data
    data = dict(data) if isinstance(data, dict) else {}
    data["create"] = {"attempt": attempt,
                      "token": launch_token(node.id, attempt,
                                            installation),
                      "started": time.time()}
    node.driver_data = data


def has_intent(node: Node, attempt: int,
               installation: str | None = None) -> bool:
    """Whether ``node`` already carries the intent of ``attempt``."""
    data = node.driver_data
    intent = data.get("create") if isinstance(data, dict) else None
    return (isinstance(intent, dict) and intent.get("attempt") == attempt
            and intent.get("token") == launch_token(node.id, attempt,
                                                    installation))


class NodeLaunch:
    """State of one node's launch; see the module docstring."""

    def __init__(self, manager, node: Node, pool, label,
                 request: RequestInfo | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 image_external_id=None):
        self.manager = manager
        self.zk = manager.zk
        self.provider = manager.provider
        self.adapter = manager.adapter
        self.node = node
        self.pool = pool
        self.label = label
        self.request = request or RequestInfo()
        self.image_external_id = image_external_id
        self.clock = clock
        self.log = logging.LoggerAdapter(
            logging.getLogger("nodepool.launcher.node"),
            {"node": node.id, "request": self.request.id})
        self.attempt = 0
        self.start_time = clock()
        self.outcome = Outcome.RUNNING
        self.phase = _Phase.CREATE
        self.machine: StateMachine | None = None
        self.keyscan_future: Future | None = None
        #: the console read of a failed keyscan, which its delete waits for
        self._console_read: Future | None = None
        self.attempt_start = 0.0
        self.running_time = 0.0
        self.error: str | None = None
        self.detached = False
        self._finished = False
        # A node write in flight (kazoo async) and what to do once it
        # landed: the loop thread never waits for a ZooKeeper reply.
        self._write = None
        self._after_write: Callable[[], None] | None = None
        # After ZooKeeper trouble the same write goes out again at this
        # time (the node's full content: idempotent), then ``_rewrite_then``.
        self._rewrite_at: float | None = None
        self._rewrite_then: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._new_attempt()

    # -- helpers -----------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.outcome is not Outcome.RUNNING

    @property
    def settled(self) -> bool:
        """Done, and the loop has called ``finished()``: from now on the
        launcher never touches the node (nor its lock) again."""
        return self._finished

    def _new_attempt(self) -> None:
        self.attempt += 1
        self.attempt_start = self.clock()
        self.phase = _Phase.CREATE
        # Made on the first advance, so that adapters only ever see
        # create_machine() from their provider's loop thread.
        self.machine = None

    def _make_machine(self) -> StateMachine:
        installation = self.adapter.installation
        token = launch_token(self.node.id, self.attempt, installation)
        if not has_intent(self.node, self.attempt, installation):
            record_intent(self.node, self.attempt, installation)
            self.zk.store_node(self.node)
        spec = LaunchSpec(
            node_id=self.node.id, hostname=f"np{self.node.id}",
            provider_name=self.provider.name, pool=self.pool,
            label=self.label, az=self.node.az,
            image_external_id=self.image_external_id, request=self.request,
            attempt=self.attempt, client_token=token,
            installation=installation)
        return self.adapter.create_machine(spec)

    def detach(self) -> bool:
        """The request let go of this node: finish unallocated, unlock.

        Returns False when the launch has already finished (the caller then
        owns the node lock and must release it itself).
        """
        with self._lock:
            if self._finished:
                return False
            self.detached = True
            self.node.allocated_to = None
            return True

    def _elapsed(self) -> float:
        return self.clock() - self.start_time

    def _report(self, result: str, message: str | None = None) -> None:
        elapsed = self._elapsed()
        self.manager.stats.launch_result(
            self.provider.name, self.node.az, self.request.requestor,
            result, elapsed)
        event = LaunchEvent(self.manager, self.provider.name, self.node.id,
                            result, elapsed, message, time.time())
        for callback in list(_listeners):
            try:
                callback(event)
            except Exception:
                self.log.exception("Launch listener failed")

    # -- the loop's entry point -------------------------------------------
    def advance(self) -> bool:
        """One non-blocking step; True once the launch has finished."""
        if self.done:
            return True
        try:
            if self._write is not None:
                if not self._write.done():
                    return False
                write, then = self._write, self._after_write
                self._write = self._after_write = None
                try:
                    write.result()  # raises what a synchronous write would
                except Exception as exc:
                    if not self._rewrite_later(exc, then):
                        raise
                    return False
                if then is not None:
                    then()
                return self.done
            if self._rewrite_at is not None:
                if self.clock() < self._rewrite_at:
                    return False
                self._rewrite_at = None
                self._store_then(self._rewrite_then)
                return False
            if self.phase is _Phase.CREATE:
                self._advance_create()
            elif self.phase is _Phase.KEYSCAN:
                self._advance_keyscan()
        except errors.WAIT_FOR_ACCESS:
            # The provider's access gate holds its calls back: only wait
            # here.  A throttle or a transient error is final when it gets
            # here (the driver's LimitedApi repeated and reported it) and
            # fails the attempt below, like any DriverError.
            self._check_timeout()
        except errors.QuotaError as e:
            self._abort(e)
        except errors.ConfigurationError as e:
            self._attempt_failed(LaunchFailed(str(e), e.stat_key),
                                 final=True)
        except LaunchFailed as e:
            self._attempt_failed(e)
        except errors.DriverError as e:
            self._attempt_failed(LaunchFailed(str(e), e.stat_key))
        except Exception as e:  # an adapter bug must not kill the loop
            self.log.exception("Unexpected error launching node %s",
                               self.node.id)
            self._attempt_failed(LaunchFailed(repr(e), "error.unknown"))
        return self.done

    def _check_timeout(self) -> None:
        if self.phase is _Phase.CREATE:
            if self.clock() - self.attempt_start > self.provider.launch_timeout:
                raise_timeout = LaunchFailed(
                    f"launch-timeout of {self.provider.launch_timeout}s "
                    "exceeded", "error.servercreatetimeout")
                self._attempt_failed(raise_timeout)

    def _advance_create(self) -> None:
        if self.machine is None:
            # No create call goes to an offering the cloud has no capacity
            # for (another launch may have learned it since this node was
            # planned): abort before asking, the request goes elsewhere.
            record = self.manager.offering_unavailable(self.pool, self.label)
            if record is not None:
                raise errors.CapacityError(record.describe())
            self.machine = self._make_machine()
        machine = self.machine
        complete = machine.advance()
        if (machine.external_id is not None and not complete
                and machine.external_id != self.node.external_id):
            # Persist the id before anything else happens to the node, so a
            # crash from here on can still find (and delete) the instance.
            # (The machine is not advanced again until the write landed.)
            self.node.external_id = machine.external_id
            self._store_then(None)
        if not complete:
            self._check_timeout()
            return
        self.running_time = self.clock()
        self._apply_instance(machine.instance)
        if self._host_key_checking():
            # Persist the instance (id, addresses) before the keyscan, which
            # may take up to boot-timeout.
            self.phase = _Phase.KEYSCAN
            self._store_then(self._start_keyscan)
        else:
            self._finish_ready()

    def _start_keyscan(self) -> None:
        # As upstream: only ssh / network_cli nodes have host keys; for any
        # other connection type (winrm...) the port must only accept TCP.
        deadline = self.running_time + self.provider.boot_timeout
        self.keyscan_future = self.manager.keyscan_pool.submit(
            self.node.interface_ip, self.node.connection_port,
            timeout=min(10.0, float(self.provider.boot_timeout)),
            retry_until=deadline,
            gather_host_keys=gathers_host_keys(self.node.connection_type))

    def _advance_keyscan(self) -> None:
        future = self.keyscan_future
        if not future.done():
            if self.clock() - self.running_time > \
                    self.provider.boot_timeout + 5:
                future.cancel()
                raise LaunchFailed(
                    f"boot-timeout of {self.provider.boot_timeout}s exceeded",
                    "error.keyscan")
            return
        try:
            keys = future.result()
        except Exception as e:
            self._log_console()
            raise LaunchFailed(scan_failure(self.node.connection_type, e),
                               "error.keyscan")
        self.node.host_keys = list(keys)
        self._finish_ready()

    def _log_console(self) -> None:
        if not self.label.settings.get("console-log"):
            return
        adapter = self.adapter
        node_id, external_id = self.node.id, self.node.external_id

        read = self._console_read = Future()

        def fetch():
            try:
                text = adapter.console_log(external_id)
                if text is not None:   # None: the cloud keeps no console
                    self.log.info("Console log of node %s:\n%s", node_id,
                                  text)
            except Exception:
                self.log.exception("Could not fetch the console log")
            finally:
                read.set_result(None)
        # A cloud call: never on the provider's loop thread.
        threading.Thread(target=fetch, name=f"console-{node_id}",
                         daemon=True).start()

    def _host_key_checking(self) -> bool:
        value = self.label.settings.get("host-key-checking")
        if value is None:
            value = self.pool.settings.get("host-key-checking", True)
        return bool(value)

    def _apply_instance(self, instance) -> None:
        node = self.node
        image = self.label.image
        node.external_id = instance.external_id
        node.public_ipv4 = instance.public_ipv4
        node.private_ipv4 = instance.private_ipv4
        node.public_ipv6 = instance.public_ipv6
        # As upstream: the driver's interface_ip, or with use-internal-ip
        # the private address when there is one.  Only a driver that says
        # nothing (None) gets the first address it gave instead.
        use_internal = self.pool.settings.get("use-internal-ip", False)
        private = instance.private_ipv4
        if use_internal and private:
            node.interface_ip = private
        elif instance.interface_ip is not None:
            node.interface_ip = instance.interface_ip
        else:
            node.interface_ip = (instance.public_ipv4 or instance.public_ipv6
                                 or instance.private_ipv4)
        node.az = node.az if instance.az is None else instance.az
        node.region = instance.region
        node.cloud = instance.cloud
        node.host_id = instance.host_id
        if instance.resources:
            node.resources = dict(instance.resources)
        node.node_properties = dict(instance.node_properties or {})
        if image is not None:
            # As upstream: the image's username, null when it sets none
            # (Zuul then uses its executor's default user).
            node.username = image.username
            node.connection_type = image.connection_type
            node.connection_port = image.connection_port
            node.python_path = image.python_path
            node.shell_type = image.shell_type
        node.ssh_port = node.connection_port

    def _store_then(self, then: Callable[[], None] | None = None) -> None:
        """Write the node without waiting; the next ``advance`` calls
        ``then`` once the write landed (a failed write counts as a failure
        of the step that wrote)."""
        self._write = self.zk.store_node_async(self.node)
        self._after_write = then

    def _rewrite_later(self, exc: Exception, then) -> bool:
        """A node write failed: with connection trouble, and time left in
        the launch timeout, write again shortly (True) instead of failing
        the attempt; the session's loss is handled by ``session_lost``."""
        if not zk_errors.is_transient(exc):
            return False
        if self.clock() - self.attempt_start > self.provider.launch_timeout:
            return False
        self.log.warning("Could not write node %s (%s); writing again",
                         self.node.id, exc)
        self._rewrite_at = self.clock() + REWRITE_DELAY
        self._rewrite_then = then
        return True

    def _finish_ready(self) -> None:
        self.node.set_state(NodeState.READY)
        # The create intent only matters while the node is being built (a
        # crash before the instance id was stored); a ready node carries
        # what upstream's does: the driver's data or null.
        data = self.node.driver_data
        if isinstance(data, dict) and "create" in data:
            data = {k: v for k, v in data.items() if k != "create"}
            self.node.driver_data = data or None
        self._store_then(self._ready_stored)

    def _ready_stored(self) -> None:
        self.outcome = Outcome.READY
        self.phase = _Phase.DONE
        self._report("ready")
        self.manager.launch_succeeded(self.pool, self.label)
        self.log.info("Node %s is ready (%s) after %.2fs, attempt %d",
                      self.node.id, self.node.interface_ip, self._elapsed(),
                      self.attempt)

    def _cleanup_instance(self) -> None:
        external_id = self.node.external_id
        if external_id is None:
            return
        read, self._console_read = self._console_read, None
        if read is None:
            self.manager.delete_instance(external_id, immediate=True)
            return
        # The console is read before the instance goes: a deleted server
        # has no console left to read.
        read.add_done_callback(lambda _: self.manager.delete_instance(
            external_id, immediate=True))

    def _attempt_failed(self, failure: LaunchFailed, final: bool = False
                        ) -> None:
        if self.done:
            return
        self.error = str(failure)
        self._report(failure.stat_key, self.error)
        if self.keyscan_future is not None:
            self.keyscan_future.cancel()
            self.keyscan_future = None
        self._cleanup_instance()
        retries = max(1, int(self.provider.launch_retries))
        if final or self.attempt >= retries:
            self.log.error("Launch of node %s failed after %d attempt(s): %s",
                           self.node.id, self.attempt, failure)
            self.node.set_state(NodeState.FAILED)
            self.outcome = Outcome.FAILED
            self.phase = _Phase.DONE
            self._store_quietly()
            return
        self.log.warning("Launch attempt %d of node %s failed, retrying: %s",
                         self.attempt, self.node.id, failure)
        self.node.external_id = None
        # (a failed READY write must not leave READY behind)
        self.node.set_state(NodeState.BUILDING)
        self._store_quietly()
        self._new_attempt()

    def _abort(self, error: errors.QuotaError) -> None:
        self.error = str(error)
        self._report(error.stat_key, self.error)
        self.log.warning("Launch of node %s aborted: %s", self.node.id, error)
        if isinstance(error, errors.CapacityError):
            # Remembered for every launcher: nobody asks for it again soon.
            self.manager.capacity_error(self.pool, self.label, error)
        self._cleanup_instance()
        self.node.set_state(NodeState.ABORTED)
        self.outcome = Outcome.ABORTED
        self.phase = _Phase.DONE
        self._store_quietly()

    def session_lost(self) -> None:
        """The ZooKeeper session ended: our lock is gone, give up (on the
        loop thread, handed over by ``ProviderManager.session_lost``)."""
        if self.done:
            return
        self._report("error.zksession", "ZooKeeper session lost")
        self.node.set_state(NodeState.FAILED)
        self.outcome = Outcome.FAILED
        self.phase = _Phase.DONE
        self._cleanup_instance()

    def finished(self) -> None:
        """Called by the loop once after the launch ended."""
        with self._lock:
            self._finished = True
            detached = self.detached
        if detached:
            self._store_quietly()
            try:
                self.zk.unlock_node(self.node)
            except Exception:
                self.log.exception("Could not unlock node %s", self.node.id)

    def _store_quietly(self) -> None:
        try:
            self.zk.store_node(self.node)
        except Exception:
            self.log.exception("Could not store node %s", self.node.id)
