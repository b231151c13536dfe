"""Call: one cloud call of a state machine, and what its answer means.

Every cloud machine sends its calls the same way: hand the call to a pool
or batcher, look at the returned future on a later step, and decide what
the answer means.  That decision is the launch policy, written here once
instead of in every driver's machine:

- an answer is the call's value (``poll()`` is True, ``value`` holds it);
- ``Unfulfilled`` (a batch call started fewer instances than asked, and
  none for this launch) is no failure: the call is due again at once --
  the batcher paces and shrinks the calls, not the machine;
- a ``ThrottledError`` or ``TransientError`` is final for the call and
  raised: the driver's API client (``limitedapi.LimitedApi``) is the one
  layer that repeats throttled and transiently failed calls, and what
  reaches a machine is what it gave up on.  A create's error fails the
  launch attempt (the launcher's launch-retries start a new one with a new
  client token, and this one is abandoned); a delete's fails the delete,
  which the deleter repeats later;
- an ``AccessError`` (``errors.WAIT_FOR_ACCESS``) is neither: the provider
  cannot reach its cloud at all, and the provider's ``AccessGate`` is that
  error's one layer.  The call is due again exactly when the gate admits
  a call again (``RetryDelay``: the gate's back-off is the provider's one
  schedule, a machine has none of its own); a call given ``max_attempts``
  raises it once it has failed that often, without, only the launcher's
  timeouts bound the waits;
- a cancelled call (the provider is stopping) raises ``cancelled`` (a
  ``LaunchError`` for a create, a ``TransientError`` for a delete, which
  the deleter repeats later);
- anything else is raised to the machine's caller.

``abandon(delete)`` is the end of a call whose machine a newer attempt
replaced: a call not yet started is cancelled; one under way is left to
finish and what it made is handed to ``delete`` (so it does not live on
under a node id that has a new instance).

Failure story: a ``Call`` makes no cloud call itself; a failing ``delete``
of an orphan is the caller's to log (it runs on the thread that completed
the future).  A call sent again (a partial batch, or after the access gate
opened) is idempotent by construction in every driver (client tokens, PUT
by name), and nothing the cloud did is repeated: an ``AccessError`` means
the call never reached the cloud or was refused before doing anything.

Threads: a call is sent and polled by its machine's loop thread only;
``abandon`` may run on any thread -- it only cancels the future or adds a
done callback, both thread-safe.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import CancelledError, Future
from typing import Any, Callable

from nodepool.driver import errors
from nodepool.driver.backoff import AccessGate, log_failure

__all__ = ["Call", "RetryDelay", "answer_of"]

_log = logging.getLogger("nodepool.driver")

Clock = Callable[[], float]


def answer_of(future: Future, what: str,
              cancelled: type[errors.DriverError] = errors.LaunchError
              ) -> Any:
    """The result of the done ``future`` of the call ``what``; a
    cancelled call (the provider is stopping) raises ``cancelled``."""
    try:
        return future.result()
    except CancelledError:
        raise cancelled(f"{what} cancelled: provider stopping",
                        stat_key="error.unknown")


class RetryDelay:
    """When a refused call may be sent again (see the module docstring):
    after an ``AccessError`` exactly when the provider's gate admits a
    call again -- sooner would only be held back, later would leave the
    gate's probe to others; after a partial batch answer at once.

    >>> now = [0.0]
    >>> gate = AccessGate("p", clock=lambda: now[0])
    >>> gate.answered(gate.admit(), errors.CredentialError("401"))
    >>> delay = RetryDelay(gate, clock=lambda: now[0])
    >>> delay.failed(errors.CredentialError("401")), delay.due
    (1.0, False)
    >>> now[0] = 1.0; delay.due
    True
    """

    def __init__(self, gate: AccessGate, clock: Clock = time.monotonic, *,
                 max_attempts: int | None = None) -> None:
        self.gate = gate
        self.clock = clock
        self.max_attempts = max_attempts
        self.attempts = 0          # access errors so far
        self.retry_at = 0.0

    @property
    def due(self) -> bool:
        return self.clock() >= self.retry_at

    def failed(self, error: errors.AccessError) -> float:
        """Count one access error; the seconds until the gate admits the
        next try.  Raises ``error`` once ``max_attempts`` are reached."""
        self.attempts += 1
        if self.max_attempts is not None and \
                self.attempts >= self.max_attempts:
            raise error
        delay = self.gate.delay_for()
        self.retry_at = self.clock() + delay
        return delay

    def at_once(self) -> None:
        """The next try is due now (a partial batch answer)."""
        self.retry_at = self.clock()


class Call:
    """One cloud call of a machine (see the module docstring).

    ``what`` names the call in messages ("create", "PUT of np1-nic");
    ``node`` is the node it is for, None for deletes.

    >>> call = Call("create", AccessGate("p"), clock=lambda: 0.0)
    >>> call.due
    True
    >>> future = Future(); call.send(future); call.due
    False
    >>> future.set_result("i-1"); call.poll(), call.value
    (True, 'i-1')
    """

    def __init__(self, what: str, gate: AccessGate,
                 clock: Clock = time.monotonic, *, node: str | None = None,
                 cancelled: type[errors.DriverError] = errors.LaunchError,
                 max_attempts: int | None = None,
                 log: logging.Logger = _log) -> None:
        self.what = what
        self.node = node
        self.cancelled = cancelled
        self.log = log
        self.delay = RetryDelay(gate, clock, max_attempts=max_attempts)
        self.future: Future | None = None
        self.value: Any = None

    @property
    def due(self) -> bool:
        """True when the call is to be sent now: not under way, and any
        pause after a refusal is over."""
        return self.future is None and self.delay.due

    @property
    def running(self) -> bool:
        return self.future is not None

    def send(self, future: Future) -> None:
        """The call was handed to a pool or batcher: ``future`` answers."""
        self.future = future

    def poll(self) -> bool:
        """True once the call has answered (``value``); False while it
        runs or waits to be sent again (``due`` tells when).  Raises what
        the module docstring says is raised."""
        future = self.future
        if future is None or not future.done():
            return False
        self.future = None
        try:
            self.value = future.result()
        except CancelledError:
            # Raised from a handler: the clauses below do not catch it
            # (a cancelled delete is a TransientError, not a retry here).
            raise self.cancelled(f"{self.what} cancelled: provider stopping",
                                 stat_key="error.unknown")
        except errors.Unfulfilled as e:
            # Not refused, just not reached: again at once.
            self.delay.at_once()
            self.log.info("%s%s sent again: %s", self._prefix(), self.what, e)
            return False
        except errors.WAIT_FOR_ACCESS as e:
            # Not this call's failure: the provider's gate decides when.
            # (A throttle or a transient error is raised: LimitedApi
            # already repeated it as long as it should.)
            wait = self.delay.failed(e)
            log_failure(self.log, e, "%s%s will be sent again in %.1fs: %s",
                        self._prefix(), self.what, wait, e,
                        level=logging.INFO)
            return False
        return True

    def abandon(self, delete: Callable[[Any], None], *,
                answered: bool = True) -> None:
        """A newer attempt replaced this call's machine: cancel the call
        if it has not started, else hand what it makes to ``delete`` once
        it answers.  ``answered`` False leaves an answer that is already
        in alone (its machine's ``external_id`` names it, and the
        launcher deletes that)."""
        future = self.future
        if future is None or future.cancel():
            return
        if future.done() and not answered:
            return
        future.add_done_callback(lambda f: self._orphan(f, delete))

    @staticmethod
    def _orphan(future: Future, delete: Callable[[Any], None]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        delete(future.result())

    def _prefix(self) -> str:
        return f"Node {self.node}: " if self.node is not None else ""
