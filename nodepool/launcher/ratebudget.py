"""RateBudget: one rate budget per cloud account, shared by its launchers.

Sites run two or three launchers against one ZooKeeper for availability,
often with the same provider configured on each.  A provider's ``rate``
is the budget of the cloud account behind it, so the launchers serving a
provider *name* together stay within it: the provider name identifies the
account (two providers of one account under different names are two
budgets; give them one name, or split ``rate`` by hand).

Design: a lease record per launcher and provider,
``/nodepool/rate-budget/<provider>/<member>`` (ephemeral; ``member`` is
``<hostname>-<uuid4 hex>``, new on every provider start), rewritten every
``interval`` (1 s) with ``busy`` (the limiters that had callers queued
since the last beat), ``rates`` (each limiter's configured calls per
second, by limiter name) and, for people, ``shares`` (the fractions it
runs at).  Every beat each launcher also reads its peers' records and sets
its limiters' share (``RateLimiter.set_share``) to::

    budget = lowest rate any live member configured for that limiter
    share  = budget * weight(self) / sum(weight(live members)) / own rate
    weight = 1 if the member's limiter is busy else IDLE_WEIGHT (0.05)

so launchers with work split the budget evenly and an idle one keeps a
trickle (its first call never waits: the bucket is full) until its next
beat says it is busy.  A launcher alone has the whole rate.

Why leases in our own path, not a division by the component registry:
the registry's ephemeral znodes outlive a ``kill -9`` by the session
timeout (10 s), so survivors would take the dead launcher's share only
after that -- too late, and shortening the session for this would make
every lock and request of the launcher fragile.  A heartbeat in the
components would rewrite, every second, the znodes Zuul watches one by one
(its component registry sets a data watch on each).  A record of our own
carries the liveness (a peer is live while its record changes within
``lease``, 3 s, measured on the reader's own monotonic clock, so host
clocks need not agree) and the demand; upstream launchers and Zuul never
read it.  A token budget in ZooKeeper (a write per cloud call) would cost
a ZooKeeper round trip per call and stop every call when ZooKeeper is
slow; the division costs one write and one read per member per second.

Join, leave, crash: a joining launcher starts its limiters at the share
of an idle member (it writes its record, then reads its peers, before its
provider makes a call); the others see it within one beat.  A share is
lowered at once.  A rise that comes from our own record (we joined, got
busy, or are back in touch with ZooKeeper) waits until the higher target
has held for ``hold`` (1.5 s: two beats), so the peers have seen our
record and lowered their shares before we take more: together the members
overshoot for at most one beat.  A rise that comes from the peers' records
(one went idle, left or died) applies at once: that peer has already
lowered its own share or stopped.  A launcher that stops deletes its
record (the others take its share on their next beat); a killed one stops
beating and is dropped once its record has not changed for ``lease`` on a
survivor's clock: the survivors use the dead launcher's share some 4 to 5
s after the kill (its last beat is seen up to a beat late), well before
its session expires (10 s) and its znode goes.

Failure story: a beat that fails (ZooKeeper suspended or lost, a write
refused) is logged once per outage and retried on the next beat; while
our last good beat is older than ``lease - interval`` the peers may
already count us as gone, so our limiters fall to the share of an idle
member among everyone last seen (no launcher accepts requests without
ZooKeeper anyway).  A record that is not ours to parse (bad JSON, a rate
that is no positive number) is skipped with one warning naming its znode
per version; the rest of the budget is unaffected.  The record vanishes
with a lost session and is created again on the next beat.

Threads: one ``RateBudget`` thread per launcher beats every provider in
turn; ``join``/``leave`` are called from the launcher's reconcile (main
loop or start) and run their first or last write on the caller's thread;
``RateBudget._lock`` guards the table of providers, each
``ProviderBudget._lock`` keeps a beat and its ``leave`` apart.  ``RateLimiter`` is thread-safe
itself.  Times come from the injected ``clock``.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from nodepool.driver.ratelimit import RateLimiter
from nodepool.zk.paths import rate_budget_dir

__all__ = ["IDLE_WEIGHT", "Member", "Liveness", "ShareHold",
           "ProviderBudget", "RateBudget", "target_shares"]

log = logging.getLogger(__name__)

#: the weight of a member with no caller queued, against 1 for a busy one
IDLE_WEIGHT = 0.05
INTERVAL = 1.0
LEASE = 3.0
HOLD = 1.5


@dataclass(frozen=True)
class Member:
    """One launcher's record: ``rates`` by limiter name (calls/s) and the
    names of the limiters that had callers queued (``busy``)."""

    id: str
    rates: Mapping[str, float]
    busy: frozenset[str] = frozenset()

    def weight(self, limiter: str) -> float:
        return 1.0 if limiter in self.busy else IDLE_WEIGHT

    def to_json(self, hostname: str,
                shares: Mapping[str, float] | None = None) -> bytes:
        """The record; ``shares`` (what the writer runs at now) is for
        people and benchmarks, no member reads it."""
        return json.dumps({"hostname": hostname, "busy": sorted(self.busy),
                           "rates": dict(self.rates),
                           "shares": {n: round(v, 4) for n, v in
                                      (shares or {}).items()}},
                          sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, member_id: str, data: bytes) -> "Member":
        """Parse a peer's record; ValueError names what is wrong."""
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("rates"),
                                                       dict):
            raise ValueError("no 'rates' object")
        rates = {}
        for name, rate in doc["rates"].items():
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                    or not math.isfinite(rate) or rate <= 0:
                raise ValueError(f"rates.{name} is {rate!r}, not a positive "
                                 "number")
            rates[str(name)] = float(rate)
        busy = doc.get("busy", [])
        if not isinstance(busy, list):
            raise ValueError(f"busy is {busy!r}, not a list")
        return cls(member_id, rates, frozenset(str(b) for b in busy))


def target_shares(own: Member, peers: Iterable[Member]) -> dict[str, float]:
    """The fraction (0, 1] of each of ``own``'s limiter rates it may use
    beside the live ``peers`` (see the module docstring)."""
    members = [m for m in peers if m.id != own.id] + [own]
    out = {}
    for name, rate in own.rates.items():
        sharing = [m for m in members if name in m.rates]
        budget = min(m.rates[name] for m in sharing)
        total = sum(m.weight(name) for m in sharing)
        out[name] = min(1.0, budget * own.weight(name) / total / rate)
    return out


class Liveness:
    """Peers whose record changed within ``lease`` seconds of our clock.

    ``observe`` is given each record's ``mzxid`` (it changes with every
    write, also a re-creation), so only a peer's own beats keep it live."""

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self._seen: dict[str, tuple[int, float]] = {}

    def observe(self, member_id: str, mzxid: int, now: float) -> None:
        last = self._seen.get(member_id)
        if last is None or last[0] != mzxid:
            self._seen[member_id] = (mzxid, now)

    def keep_only(self, member_ids: Iterable[str]) -> None:
        ids = set(member_ids)
        for gone in set(self._seen) - ids:
            del self._seen[gone]

    def live(self, now: float) -> set[str]:
        return {m for m, (_, t) in self._seen.items()
                if now - t < self.lease}


class ShareHold:
    """Lower a share at once; while ``held``, raise it only to what every
    target of the last ``hold`` seconds allowed (the peers' reaction
    time)."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self._history: list[tuple[float, float]] = []

    def update(self, target: float, now: float, held: bool = True) -> float:
        """The share to use now that the target is ``target``."""
        self._history.append((now, target))
        # Keep the targets of the last ``hold`` seconds and the one that
        # was in force when that window began.
        while len(self._history) > 1 and \
                self._history[1][0] <= now - self.hold:
            self._history.pop(0)
        if not held:
            return target
        return min(t for _, t in self._history)


class ProviderBudget:
    """This launcher's member record of one provider and its limiters'
    shares (``beat`` publishes, reads the peers and applies)."""

    def __init__(self, kazoo, provider_name: str,
                 limiters: Iterable[RateLimiter], *, hostname: str,
                 interval: float = INTERVAL, lease: float = LEASE,
                 hold: float = HOLD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kazoo = kazoo
        self.provider_name = provider_name
        self.limiters = {lim.name: lim for lim in limiters
                         if lim.configured_rate > 0}
        self.hostname = hostname
        self.member_id = f"{hostname}-{uuid.uuid4().hex}"
        self.dir = rate_budget_dir(provider_name)
        self.path = f"{self.dir}/{self.member_id}"
        self.interval, self.lease = interval, lease
        self.clock = clock
        self.liveness = Liveness(lease)
        self.holds = {name: ShareHold(hold) for name in self.limiters}
        self.peers: dict[str, Member] = {}
        self.last_good: float | None = None
        self._waits = {name: lim.stats.waits
                       for name, lim in self.limiters.items()}
        self._bad: dict[str, int] = {}
        self._failing = False
        self.busy: frozenset[str] = frozenset()
        # When our own weight last rose, per limiter (joining counts).
        self._rose = {name: clock() for name in self.limiters}
        # A beat and ``leave`` exclude each other, so no beat re-creates
        # the record of a member that left.
        self._lock = threading.Lock()
        self._left = False

    # -- one beat ---------------------------------------------------------
    def own(self) -> Member:
        return Member(self.member_id,
                      {n: lim.configured_rate
                       for n, lim in self.limiters.items()}, self.busy)

    def _measure_busy(self) -> frozenset[str]:
        busy = set()
        for name, lim in self.limiters.items():
            waits = lim.stats.waits
            if lim.waiting or waits != self._waits[name]:
                busy.add(name)
            self._waits[name] = waits
        return frozenset(busy)

    def beat(self) -> dict[str, float]:
        """Publish, read the peers, set the shares; return them."""
        with self._lock:
            if self._left:
                return {}
            return self._beat()

    def _beat(self) -> dict[str, float]:
        busy = self._measure_busy()
        for name in busy - self.busy:
            self._rose[name] = self.clock()
        self.busy = busy
        try:
            self._publish()
            self._read_peers()
        except (KazooException, OSError) as exc:
            if not self._failing:
                log.warning("Rate budget of provider %s: ZooKeeper beat "
                            "failed (%s: %s); retrying every %.3g s",
                            self.provider_name, type(exc).__name__, exc,
                            self.interval)
            self._failing = True
        else:
            if self._failing:
                log.info("Rate budget of provider %s: beating again",
                         self.provider_name)
            self._failing = False
            self.last_good = self.clock()
        return self.apply()

    def _publish(self) -> None:
        data = self.own().to_json(
            self.hostname, {n: lim.share for n, lim in self.limiters.items()})
        try:
            self.kazoo.set(self.path, data)
        except NoNodeError:
            try:
                self.kazoo.create(self.path, data, ephemeral=True,
                                  makepath=True)
            except NodeExistsError:  # pragma: no cover - a racing beat
                self.kazoo.set(self.path, data)

    def _read_peers(self) -> None:
        now = self.clock()
        names = [n for n in self.kazoo.get_children(self.dir)
                 if n != self.member_id]
        peers = {}
        for name in names:
            try:
                data, stat = self.kazoo.get(f"{self.dir}/{name}")
            except NoNodeError:
                continue
            try:
                member = Member.from_json(name, data)
            except ValueError as exc:
                if self._bad.get(name) != stat.mzxid:
                    self._bad[name] = stat.mzxid
                    log.warning("Rate budget: skipping %s/%s: %s",
                                self.dir, name, exc)
                continue
            self._bad.pop(name, None)
            self.liveness.observe(name, stat.mzxid, now)
            peers[name] = member
        self.liveness.keep_only(peers)
        self.peers = peers

    def live_peers(self) -> list[Member]:
        live = self.liveness.live(self.clock())
        return [m for i, m in self.peers.items() if i in live]

    def out_of_touch(self) -> bool:
        return self.last_good is None or \
            self.clock() - self.last_good > self.lease - self.interval

    def apply(self) -> dict[str, float]:
        """Set every limiter's share from what the last beats saw."""
        now = self.clock()
        if self.out_of_touch():
            # The peers may count us gone: take an idle member's share of
            # everyone last seen, whatever the hold says.
            own = Member(self.member_id, self.own().rates)
            shares = target_shares(own, [Member(m.id, m.rates,
                                                frozenset(m.rates))
                                         for m in self.peers.values()])
            for name, hold in self.holds.items():
                hold.update(shares[name], now)
                self._rose[name] = now     # back in touch: a rise of ours
        else:
            targets = target_shares(self.own(), self.live_peers())
            shares = {name: self.holds[name].update(
                t, now, held=now - self._rose[name] < self.holds[name].hold)
                for name, t in targets.items()}
        for name, share in shares.items():
            self.limiters[name].set_share(share)
        return shares

    def start_share(self) -> dict[str, float]:
        """Before the provider's first call: write our record, read the
        peers and start at an idle member's share."""
        self._measure_busy()
        self.busy = frozenset()
        try:
            self._publish()
            self._read_peers()
            self.last_good = self.clock()
        except (KazooException, OSError) as exc:
            log.warning("Rate budget of provider %s: first ZooKeeper beat "
                        "failed (%s: %s)", self.provider_name,
                        type(exc).__name__, exc)
            self._failing = True
        return self.apply()

    def leave(self) -> None:
        """Delete our record (peers take our share on their next beat)."""
        with self._lock:
            self._left = True
            self._delete()

    def _delete(self) -> None:
        try:
            self.kazoo.delete(self.path)
        except NoNodeError:
            pass
        except (KazooException, OSError) as exc:
            log.warning("Rate budget of provider %s: could not delete %s "
                        "(%s); it goes with the session", self.provider_name,
                        self.path, exc)


class RateBudget:
    """The launcher's thread beating every provider's ``ProviderBudget``."""

    def __init__(self, kazoo, hostname: str | None = None, *,
                 interval: float = INTERVAL, lease: float = LEASE,
                 hold: float = HOLD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kazoo = kazoo
        self.hostname = hostname or socket.gethostname()
        self.interval, self.lease, self.hold = interval, lease, hold
        self.clock = clock
        self._budgets: dict[str, ProviderBudget] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def join(self, provider_name: str, limiters: Iterable[RateLimiter]
             ) -> ProviderBudget | None:
        """Share ``limiters`` (a provider's) with the other launchers
        serving ``provider_name``; None when all are unlimited."""
        budget = ProviderBudget(self.kazoo, provider_name, limiters,
                                hostname=self.hostname,
                                interval=self.interval, lease=self.lease,
                                hold=self.hold, clock=self.clock)
        if not budget.limiters:
            return None
        self.leave(provider_name)
        budget.start_share()
        with self._lock:
            self._budgets[provider_name] = budget
        log.info("Rate budget of provider %s: member %s, %d live peer(s)",
                 provider_name, budget.member_id, len(budget.live_peers()))
        return budget

    def leave(self, provider_name: str) -> None:
        with self._lock:
            budget = self._budgets.pop(provider_name, None)
        if budget is not None:
            budget.leave()

    def beat_all(self) -> None:
        with self._lock:
            budgets = list(self._budgets.values())
        for budget in budgets:
            try:
                budget.beat()
            except Exception:  # one provider never stops the others
                log.exception("Rate budget of provider %s: beat failed",
                              budget.provider_name)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="RateBudget",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat_all()

    def stop(self) -> None:
        """Stop beating and delete every record."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for name in list(self._budgets):
            self.leave(name)
