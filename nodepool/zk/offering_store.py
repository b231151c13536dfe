"""Reading and writing offering records (see ``offering.py``).

Reads come from the watch cache (``/nodepool/offerings`` is a cached root),
so every launcher on the ensemble sees a record within one notification of
its write.  Writes are conditional on the version read: two launchers that
record a capacity error for the same offering at once do not lose either
write -- the loser reads again and its caller decides anew.

Failure story: a record that cannot be parsed is skipped with one warning
per znode version (it blocks nothing); ZooKeeper errors reach the caller
as ``ZooKeeperError`` subclasses.

Threads: any (``nodepool.driver.offerings`` calls it from whichever
thread meets a capacity error or asks whether an offering is usable).
The mixin keeps no state and takes no lock of its own: a read is a cache
lookup (uncached: one round trip), a write or delete is one ZooKeeper
call on the caller's thread, which waits for it -- never on kazoo's own
threads.  Concurrent writers are told apart by the znode version, not by
a lock.
"""

from __future__ import annotations

from typing import Iterator

from kazoo.exceptions import BadVersionError, KazooException, NoNodeError
from kazoo.exceptions import NodeExistsError

from .errors import ZooKeeperError
from .offering import Offering
from .paths import OFFERINGS, offering_path
from .store import StoreBase

__all__ = ["OfferingStore"]


class OfferingStore(StoreBase):
    """Mixin of :class:`nodepool.zk.zookeeper.ZooKeeper` for offerings."""

    def iter_offerings(self, provider: str | None = None,
                       cached: bool = True) -> Iterator[Offering]:
        for name in self._children(OFFERINGS, cached):
            path = f"{OFFERINGS}/{name}"
            raw = self._read_raw(path, cached)
            if raw is None or not raw[0]:
                continue
            try:
                offering = Offering.from_json(raw[0], raw[1])
            except (ValueError, UnicodeDecodeError) as exc:
                self._report_once(path, raw[1], f"bad offering: {exc}")
                continue
            if provider is None or offering.provider == provider:
                yield offering

    def get_offering(self, provider: str, key: str,
                     cached: bool = True) -> Offering | None:
        path = offering_path(provider, key)
        raw = self._read_raw(path, cached)
        if raw is None or not raw[0]:
            return None
        try:
            return Offering.from_json(raw[0], raw[1])
        except (ValueError, UnicodeDecodeError) as exc:
            self._report_once(path, raw[1], f"bad offering: {exc}")
            return None

    def put_offering(self, offering: Offering) -> bool:
        """Create or rewrite the record; False when someone else changed it
        since it was read (``offering.stat``), or created it meanwhile."""
        path = offering_path(offering.provider, offering.key)
        try:
            if offering.stat is None:
                self.kazoo.create(path, offering.to_json(), makepath=True)
            else:
                self.kazoo.set(path, offering.to_json(),
                               version=offering.stat.version)
        except (BadVersionError, NodeExistsError, NoNodeError):
            return False
        except KazooException as exc:
            raise ZooKeeperError(f"could not write offering {path}: "
                                 f"{exc!r}") from exc
        return True

    def delete_offering(self, provider: str, key: str) -> None:
        path = offering_path(provider, key)
        try:
            self.kazoo.delete(path)
        except NoNodeError:
            pass
        except KazooException as exc:
            raise ZooKeeperError(f"could not delete offering {path}: "
                                 f"{exc!r}") from exc
