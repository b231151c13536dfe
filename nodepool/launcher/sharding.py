"""Which pool takes a request first: rendezvous hashing over the pools.

Every pool worker of every launcher reads the same waiting requests.  If
all of them tried to lock each one, all but one attempt would fail: load
on ZooKeeper that grows with the number of launchers.  Instead, the pools
that would serve a request (zookeeper.md §8.2: the candidates of the best
priority that are not paused) rank it by rendezvous ("highest random
weight") hashing: each pool scores ``hash(request id, pool id)`` and the
highest score goes first.  Every launcher computes the same order from the
same component ids without talking to the others; a pool that leaves (or
declines, or pauses) moves only its own requests to the next in line, and
requests spread evenly over the pools.

The pool first in line takes the request at once.  The one ranked *k*-th
after it (counting only those ahead of it that have not given way) takes
it once it has seen the request for ``k * grace`` seconds *and* none of
the pools ahead of it is making progress: a first pool that takes nothing
(hung, at its max-concurrency, an older launcher that knows nothing of
this order) delays its requests by one grace.  A pool makes progress
when a request it was first for leaves the waiting requests (taken, or
withdrawn) without this worker having taken it; a busy first pool works
through a burst of its own requests at its own pace, and the others do
not race it for the ones it is about to lock.  Should a busy first pool
never take one particular request, the next takes it after ``k * bound``
(ten graces): nothing waits for ever.  Unless the next one is idle: a
pool that found nothing of its own to take treats the requests of a busy
pool that have waited their grace as ``SPARE`` and takes them newest
first, from the far end of the queue the busy pool works through oldest
first, so a burst that one pool is slow to work through is shared at its
end instead of waiting for that pool alone, and the two meet (and may
race for a lock) only where their ends meet.  Times are measured on this
worker's clock (monotonic, injectable) from its first sight of the
request, so clocks of different hosts never meet.

Threads: a ``Shard`` belongs to one pool worker's routing thread; it is
not thread-safe and needs no lock.  It touches neither ZooKeeper nor a
cloud: the pool worker passes it the candidates it read.
"""

from __future__ import annotations

import enum
import hashlib
import math
import time
from collections.abc import Callable, Collection, Iterable

# Longer than a live first pool needs to see a new request and take it:
# an idle worker passes once a second (at once when a request appears),
# the component cache is a second old at most, and a take is three round
# trips.  Short enough that a request whose first pool does not take it
# waits only a little longer than it would without sharding.
GRACE = 3.0
# A request whose first pool keeps taking others but not it goes to the
# next after this many graces (it is not stuck behind a busy pool).
BOUND_GRACES = 10


class Turn(enum.Enum):
    MINE = "mine"       # first in line: take it now
    LATE = "late"       # another pool's, but it has waited its grace
    SPARE = "spare"     # another busy pool's past its grace: for an idle one
    WAIT = "wait"       # another pool's, still within the grace


def score(key: str, member: str) -> int:
    """The rendezvous weight of ``member`` for ``key`` (stable across
    processes and Python versions: no ``hash()``, which is salted)."""
    digest = hashlib.blake2b(f"{key}\x00{member}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranking(key: str, members: Iterable[str]) -> list[str]:
    """``members`` in the order they take ``key``: highest weight first
    (ties, which need a hash collision, by id)."""
    return sorted(set(members), key=lambda m: (-score(key, m), m))


class Shard:
    """One pool worker's view of whose turn each request is.

        shard = Shard(worker_id, clock=clock)
        shard.turn(request.id, candidate_ids)    # Turn.MINE, LATE or WAIT
        shard.taking(request.id)                 # when we take it
        shard.keep(ids_still_waiting)            # once per routing pass
    """

    def __init__(self, me: str, grace: float = GRACE,
                 clock: Callable[[], float] = time.monotonic):
        self.me = me
        self.grace = grace
        self.bound = BOUND_GRACES * grace
        self.clock = clock
        self._seen: dict[str, float] = {}    # key -> first sight
        self._order: dict[str, tuple[frozenset, list[str]]] = {}
        self._first: dict[str, str] = {}     # key -> the pool first for it
        self._ours: set[str] = set()         # keys we took
        self._progress: dict[str, float] = {}  # pool -> last progress

    def turn(self, key: str, members: Collection[str],
             gives_way: Callable[[str], bool] = lambda member: False,
             idle: bool = False) -> Turn:
        """Is it our turn to take ``key``?  ``members`` are the ids of the
        pools that would serve it now, ours among them unless we are
        paused (then we come after all of them).  ``gives_way(id)`` is
        asked only of members ranked ahead of us: True when that pool
        cannot take the request now (it does not count).  ``idle``: we
        have nothing of our own to take (a busy pool's request past its
        grace is then ``SPARE`` instead of ``WAIT``)."""
        ahead = []
        for member in self._ranking(key, members):
            if member == self.me:
                break
            if not gives_way(member):
                ahead.append(member)
        if not ahead:
            return Turn.MINE
        self._first[key] = ahead[0]
        now = self.clock()
        waited = now - self._seen.setdefault(key, now)
        if waited < len(ahead) * self.grace:
            return Turn.WAIT
        if waited >= len(ahead) * self.bound or not any(
                now - self._progress.get(m, -math.inf) < self.grace
                for m in ahead):
            return Turn.LATE
        return Turn.SPARE if idle else Turn.WAIT

    def unread_waits(self, key: str, members: Collection[str],
                     idle: bool = False) -> bool:
        """Before reading ``key`` at all: True when it waits now whatever
        it says -- ``members`` are *every* pool that could serve it, ours
        among them, and ``turn`` over them says WAIT (another ranks first
        and it has not waited its grace, or the pools ahead make
        progress).  A caller may then leave it unread this pass.  Its
        data could only leave fewer pools ahead of us (a provider it is
        addressed to, pools that declined it): the caller asks only
        about requests whose data cannot say so (all pools alike, the
        request unchanged since it was created)."""
        return self.turn(key, members, idle=idle) is Turn.WAIT

    def taking(self, key: str) -> None:
        """We take ``key``: its leaving is no progress of another pool."""
        self._ours.add(key)

    def keep(self, keys: Iterable[str]) -> None:
        """Forget every key but ``keys`` (the requests still waiting): a
        request that comes back later is seen anew.  The pool that was
        first for a key that left made progress (unless we took it)."""
        keys = set(keys)
        now = self.clock()
        for key in [k for k in self._first if k not in keys]:
            if key not in self._ours:
                self._progress[self._first[key]] = now
        for table in (self._seen, self._order, self._first):
            for key in [k for k in table if k not in keys]:
                del table[key]
        self._ours &= keys
        for member in [m for m, t in self._progress.items()
                       if now - t >= self.grace]:
            del self._progress[member]

    def _ranking(self, key: str, members: Collection[str]) -> list[str]:
        members = frozenset(members)
        cached = self._order.get(key)
        if cached is None or cached[0] != members:
            cached = self._order[key] = (members, ranking(key, members))
        return cached[1]
