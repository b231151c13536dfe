"""The launchers' usage records: ``/nodepool/launcher-usage/<member>``.

Each launcher writes one ephemeral record (``nodepool.launcher.usagebook``
says what is in it and who reads it); this mixin only moves bytes.  The
tree is cached lazily (``zookeeper.py``): a peer's change is read when a
reader asks for it, at most once per change, and a reader never reads its
own record (it passes its own member name as ``mine``).

Failure story: ``put_usage`` raises ``ZooKeeperError`` for connection
trouble or a refused write (the caller writes again on its next beat); a
record that vanished (session lost: it was ephemeral) is created again.
Reads serve what the cache has (``usage_records``); nothing here parses.

Threads: any thread; the cache guards itself, and only the record's owner
writes it.
"""

from __future__ import annotations

from typing import Any

from kazoo.exceptions import (BadVersionError, KazooException,
                              NodeExistsError, NoNodeError)

from .errors import ZooKeeperError
from .paths import LAUNCHER_USAGE, launcher_usage_path
from .store import StoreBase

__all__ = ["UsageStore"]


class UsageStore(StoreBase):
    """Mixin of :class:`nodepool.zk.zookeeper.ZooKeeper` for usage records."""

    def put_usage(self, member: str, data: bytes, version: int) -> Any:
        """Write our record (``version``: that of our last write, -1 for
        none); returns the new stat (its ``version`` goes to the next
        write)."""
        path = launcher_usage_path(member)
        try:
            if version >= 0:
                try:
                    return self._set_async(path, data, version).get()
                except (NoNodeError, BadVersionError):
                    pass    # gone with a session, or not ours: create
            try:
                self.kazoo.create(path, data, ephemeral=True, makepath=True)
            except NodeExistsError:
                pass        # ours from before a reconnection: overwrite
            return self._set_async(path, data, -1).get()
        except KazooException as exc:
            raise ZooKeeperError(f"could not write {path}: {exc!r}") \
                from exc

    def delete_usage(self, member: str) -> None:
        try:
            self.kazoo.delete(launcher_usage_path(member))
        except NoNodeError:
            pass
        except KazooException as exc:
            raise ZooKeeperError(
                f"could not delete {launcher_usage_path(member)}: {exc!r}") \
                from exc

    def usage_records(self, mine: str | None = None
                      ) -> list[tuple[str, bytes, Any]]:
        """(member, data, stat) of every record but ``mine``: from the
        cache (a changed one is read now), else read directly."""
        if self._use_cache(LAUNCHER_USAGE, True):
            return [(name, entry.data, entry.stat) for name, entry in
                    self.caches.child_data(LAUNCHER_USAGE,
                                           lambda n: n != mine)
                    if entry is not None and entry.data is not None]
        out = []
        for name in self._children(LAUNCHER_USAGE, cached=False):
            if name == mine:
                continue
            try:
                data, stat = self.kazoo.get(launcher_usage_path(name))
            except NoNodeError:
                continue
            except KazooException as exc:
                raise ZooKeeperError(f"could not read "
                                     f"{launcher_usage_path(name)}: "
                                     f"{exc!r}") from exc
            out.append((name, data, stat))
        return out
