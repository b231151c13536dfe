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
it once it has seen the request for ``k * grace`` seconds: a first pool
that never takes the request (hung, out of capacity, an older launcher
that knows nothing of this order) delays it by one grace at most, and
nothing waits for ever.  The grace is measured from this worker's first
sight of the request (its own monotonic clock, injectable), so clocks of
different hosts never meet.

Threads: a ``Shard`` belongs to one pool worker's routing thread; it is
not thread-safe and needs no lock.  It touches neither ZooKeeper nor a
cloud: the pool worker passes it the candidates it read.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable, Collection, Iterable

# Longer than a live first pool needs to see a new request and take it:
# an idle worker passes once a second (at once when a request appears),
# the component cache is a second old at most, and a take is three round
# trips.  Short enough that a request whose first pool does not take it
# waits only a little longer than it would without sharding.
GRACE = 3.0


class Turn(enum.Enum):
    MINE = "mine"       # first in line: take it now
    LATE = "late"       # another pool's, but it has waited its grace
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
        shard.keep(ids_still_waiting)            # once per routing pass
    """

    def __init__(self, me: str, grace: float = GRACE,
                 clock: Callable[[], float] = time.monotonic):
        self.me = me
        self.grace = grace
        self.clock = clock
        self._seen: dict[str, float] = {}    # key -> first sight
        self._order: dict[str, tuple[frozenset, list[str]]] = {}

    def turn(self, key: str, members: Collection[str],
             gives_way: Callable[[str], bool] = lambda member: False
             ) -> Turn:
        """Is it our turn to take ``key``?  ``members`` are the ids of the
        pools that would serve it now, ours among them unless we are
        paused (then we come after all of them).  ``gives_way(id)`` is
        asked only of members ranked ahead of us: True when that pool
        cannot take the request now (it does not count)."""
        ahead = 0
        for member in self._ranking(key, members):
            if member == self.me:
                break
            if not gives_way(member):
                ahead += 1
        if ahead == 0:
            return Turn.MINE
        now = self.clock()
        seen = self._seen.setdefault(key, now)
        return Turn.LATE if now - seen >= ahead * self.grace else Turn.WAIT

    def keep(self, keys: Iterable[str]) -> None:
        """Forget every key but ``keys`` (the requests still waiting): a
        request that comes back later is seen anew."""
        keys = set(keys)
        for table in (self._seen, self._order):
            for key in [k for k in table if k not in keys]:
                del table[key]

    def _ranking(self, key: str, members: Collection[str]) -> list[str]:
        members = frozenset(members)
        cached = self._order.get(key)
        if cached is None or cached[0] != members:
            cached = self._order[key] = (members, ranking(key, members))
        return cached[1]
