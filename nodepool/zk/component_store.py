"""Registering and reading components (zookeeper.md §8.1).

Failure story: components are ephemeral.  When the session is LOST they are
gone; once a new session is CONNECTED the ``ZooKeeper`` facade rewrites
every component still registered through this object with
``update_component``, which finds its znode gone and re-creates it at a
new sequential path (set-or-create, so a component a worker's own update
already re-created is not published twice).

Threads: components are registered, updated and unregistered by their
owners' threads (the launcher's start-up, ``NodePool`` main loop and stop
for the launcher component; each pool worker for its own pool component),
and restored after a new session on the facade's
``nodepool-zk-session-restore`` thread.  The table of registered components
(``_registered``) and every create or set of a component's znode happen
under ``_registered_lock`` (an ``RLock``: the restore thread holds it around
``update_component``), so a restore and an owner's update never interleave;
the round trip is made while it is held, on the calling thread (never one of
kazoo's).  Unregistering takes the component out of the table under the lock
and deletes its znode after.  Reads (``iter_components``) take no lock: the
cache, or one uncached read per component.
"""

from __future__ import annotations

import threading

from kazoo.exceptions import KazooException, NoNodeError

from .component import (COMPONENT_CLASSES, MODEL_API, Component,
                        LauncherComponent, PoolComponent)
from .errors import BadZnode, ZooKeeperError
from .paths import COMPONENTS, component_dir
from .store import StoreBase

__all__ = ["ComponentStore"]


class ComponentStore(StoreBase):
    """Mixin of :class:`nodepool.zk.zookeeper.ZooKeeper` for components."""

    def _init_components(self) -> None:
        # id(component) → component: what to re-create after session loss.
        self._registered: dict[int, Component] = {}
        self._registered_lock = threading.RLock()

    def register_launcher(self, component: LauncherComponent) -> str:
        return self.register_component(component)

    def register_pool(self, component: PoolComponent) -> str:
        return self.register_component(component)

    def register_component(self, component: Component) -> str:
        """Create the ephemeral sequential znode; returns (and sets) path."""
        with self._registered_lock:
            self._create_component(component)
            self._registered[id(component)] = component
        return component.path

    def _create_component(self, component: Component) -> None:
        prefix = f"{component_dir(component.kind)}/{component.hostname}"
        try:
            path, stat = self.kazoo.create(
                prefix, component.to_json(), ephemeral=True, sequence=True,
                makepath=True, include_data=True)
        except KazooException as exc:
            raise ZooKeeperError(f"could not register {component.kind} "
                                 f"component: {exc!r}") from exc
        component.path, component.stat = path, stat

    def update_component(self, component: Component) -> None:
        """Rewrite the whole object (re-creates it if it vanished)."""
        with self._registered_lock:
            if component.path is None:
                raise ValueError("component is not registered")
            try:
                component.stat = self.kazoo.set(component.path,
                                                component.to_json())
            except NoNodeError:
                self.log.warning("Component %s vanished; re-registering",
                                 component.path)
                self._create_component(component)

    def unregister_component(self, component: Component) -> None:
        with self._registered_lock:
            self._registered.pop(id(component), None)
            path, component.path = component.path, None
        if path is not None:
            try:
                self.kazoo.delete(path)
            except NoNodeError:
                pass

    # -- reads ------------------------------------------------------------
    def iter_components(self, kind: str, cached: bool = True,
                        rejects: list | None = None) -> list[Component]:
        """Every readable component of ``kind``; one that does not fit its
        schema is quarantined (and added to ``rejects``)."""
        cls = COMPONENT_CLASSES.get(kind, Component)
        directory = component_dir(kind)
        result = []
        for name in self._children(directory, cached):
            path = f"{directory}/{name}"
            raw = self._read_raw(path, cached)
            if raw is None:
                continue
            payload = self._decode(path, *raw)
            if payload is None:
                continue
            try:
                component = cls.from_dict(payload, path)
            except BadZnode as exc:
                self._report_once(path, raw[1], str(exc))
                if rejects is not None:
                    rejects.append(self._rejected(path, raw[1], str(exc)))
                continue
            self.quarantine.release(path)
            component.stat = raw[1]
            result.append(component)
        return result

    def iter_pool_components(self, cached: bool = True
                             ) -> list[PoolComponent]:
        return self.iter_components("pool", cached)

    def iter_launcher_components(self, cached: bool = True
                                 ) -> list[LauncherComponent]:
        return self.iter_components("launcher", cached)

    def system_model_api(self) -> int:
        """Minimum ``model_api`` over every registered component (any
        kind); our own level when nothing is registered."""
        levels = []
        for kind in self._children(COMPONENTS, cached=False):
            for component in self.iter_components(kind, cached=False):
                try:
                    levels.append(int(component.model_api))
                except (TypeError, ValueError):
                    levels.append(0)
        return min(levels) if levels else MODEL_API
