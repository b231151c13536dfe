"""Components: registration, updates, model_api, re-registration after the
session is lost (zookeeper.md §8.1, §1)."""

import json

from kazoo.client import KazooClient

from nodepool.zk import (ComponentState, LauncherComponent, PoolComponent,
                         ZooKeeper)


def expire_session(zk_env, api: ZooKeeper) -> None:
    """Close ``api``'s session from another connection: the server expires
    it and ``api`` sees LOST, then reconnects with a new session."""
    session_id, password = api.kazoo.client_id
    twin = KazooClient(hosts=zk_env.hosts, client_id=(session_id, password))
    twin.start(timeout=15)
    twin.stop()
    twin.close()


def pool(name="main", labels=("a",)):
    return PoolComponent(hostname="host1", id=f"host1-PoolWorker.p-{name}-1",
                         name=name, provider_name="p",
                         supported_labels=list(labels), priority=100,
                         version="0.1.0")


def test_register_update_unregister(zk, zkapi, zk_factory, wait_for):
    reader = zk_factory(cache=False)
    launcher = LauncherComponent(hostname="host1", version="0.1.0")
    path = zkapi.register_launcher(launcher)
    assert path.startswith("/nodepool/components/launcher/host1")
    assert len(path.rsplit("host1", 1)[1]) == 10
    worker = pool()
    zkapi.register_pool(worker)
    [seen] = reader.iter_pool_components()
    assert seen.supported_labels == ["a"] and seen.kind == "pool"
    assert seen.state == ComponentState.INITIALIZING
    worker.state = ComponentState.RUNNING
    worker.supported_labels = ["a", "b"]
    worker.paused = True
    zkapi.update_component(worker)
    [seen] = reader.iter_pool_components()
    assert (seen.state, seen.supported_labels, seen.paused) == \
        ("running", ["a", "b"], True)
    kazoo = zk.kazoo()
    raw = kazoo.get(worker.path)[0].decode()
    kazoo.stop()
    assert list(json.loads(raw)) == sorted(json.loads(raw))
    wait_for(lambda: len(zkapi.iter_pool_components(cached=True)) == 1)
    [launcher_seen] = reader.iter_launcher_components()
    assert launcher_seen.kind == "launcher"
    zkapi.unregister_component(worker)
    assert reader.iter_pool_components() == []
    zkapi.unregister_component(worker)  # idempotent


def test_components_vanish_with_the_process(zkapi, zk_factory):
    other = zk_factory(cache=False)
    other.register_pool(pool())
    assert len(zkapi.iter_pool_components(cached=False)) == 1
    other.client.disconnect()
    assert zkapi.iter_pool_components(cached=False) == []


def test_system_model_api_is_the_minimum(zk, zkapi):
    assert zkapi.system_model_api() == 0
    kazoo = zk.kazoo()
    kazoo.create("/nodepool/components/builder/b1",
                 json.dumps({"kind": "builder", "model_api": 3,
                             "hostname": "b", "state": "running",
                             "version": "x"}).encode(),
                 makepath=True, ephemeral=True, sequence=True)
    assert zkapi.system_model_api() == 3
    zkapi.register_launcher(LauncherComponent(hostname="h"))
    assert zkapi.system_model_api() == 0
    kazoo.stop()


def test_components_are_reregistered_after_session_loss(zk, zk_factory,
                                                         wait_for):
    api = zk_factory(cache=False)
    restored = []
    api.add_session_listener(lambda: restored.append(True))
    worker = pool()
    launcher = LauncherComponent(hostname="host1")
    api.register_pool(worker)
    api.register_launcher(launcher)
    old_paths = (worker.path, launcher.path)
    observer = zk_factory(cache=False)
    expire_session(zk, api)
    wait_for(lambda: restored, timeout=30, message="session restore")
    assert (worker.path, launcher.path) != old_paths
    assert [c.path for c in observer.iter_pool_components()] == \
        [worker.path]
    assert [c.path for c in observer.iter_launcher_components()] == \
        [launcher.path]
    worker.paused = True
    api.update_component(worker)
    assert observer.iter_pool_components()[0].paused is True
