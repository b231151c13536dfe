"""Session faults at the data-model layer (zookeeper.md §1, §8.1).

A session is expired from outside (a second connection reusing its id and
password closes it), so the facade sees LOST and then a new session.
"""

from __future__ import annotations

import threading

from kazoo.client import KazooClient

from nodepool.zk import LauncherComponent, PoolComponent

COMPONENTS = "/nodepool/components"


def expire(zk_env, api) -> int:
    """Expire ``api``'s session; returns the old session id."""
    session_id, password = api.kazoo.client_id
    twin = KazooClient(hosts=zk_env.hosts, client_id=(session_id, password))
    twin.start(timeout=15)
    twin.stop()
    twin.close()
    return session_id


def owners(reader, kind: str) -> list[int]:
    directory = f"{COMPONENTS}/{kind}"
    return [reader.exists(f"{directory}/{name}").ephemeralOwner
            for name in reader.get_children(directory)]


def test_restore_never_duplicates_components(zk, zk_factory, wait_for):
    """The restore after a new session and a worker's own update both
    re-create a vanished component: exactly one copy must remain."""
    api = zk_factory(cache=False)
    restored = threading.Event()
    api.add_session_listener(restored.set)
    launcher = LauncherComponent(hostname="h", version="0.1.0")
    worker = PoolComponent(hostname="h", id="h-PoolWorker.p-main-1",
                           name="main", provider_name="p",
                           supported_labels=["a"], priority=100,
                           version="0.1.0")
    api.register_launcher(launcher)
    api.register_pool(worker)
    reader = zk.kazoo()
    try:
        old = expire(zk, api)
        wait_for(restored.is_set, timeout=20, message="session restored")
        new = api.client.session_id
        assert new != old
        # The worker's next publish and a second restore (e.g. a LOST
        # that raced the first) are both harmless.
        api.update_component(worker)
        api._restore_session()
        assert owners(reader, "launcher") == [new]
        assert owners(reader, "pool") == [new]
    finally:
        reader.stop()
        reader.close()


def test_session_listener_called_once_per_new_session(zk, zk_factory,
                                                      wait_for):
    api = zk_factory(cache=False)
    calls: list[int | None] = []
    api.add_session_listener(lambda: calls.append(api.client.session_id))
    assert not api.suspended
    first = expire(zk, api)
    wait_for(lambda: len(calls) == 1, timeout=20, message="first restore")
    second = expire(zk, api)
    wait_for(lambda: len(calls) == 2, timeout=20, message="second restore")
    # each call saw the session that replaced the one just expired
    assert calls[0] == second and calls[1] not in (first, second)
    assert not api.suspended


def test_reconnects_promptly_after_a_long_outage(tmp_path):
    """After an outage longer than kazoo's default back-off would tolerate
    (its delays double up to an hour), the client is back within a couple
    of seconds of the server's restart, in the same session."""
    import time

    from nodepool.zk import ZooKeeperClient
    from tools.zookeeper import ZooKeeperServer

    server = ZooKeeperServer(str(tmp_path / "zk")).start()
    client = ZooKeeperClient(server.hosts, timeout=30.0)
    try:
        client.connect()
        session = client.session_id
        server.stop()
        outage = threading.Event()
        # The fault itself: ~14 s down (kazoo's default would then wait
        # 12.8 s or more before its next attempt).
        outage.wait(14.0)
        assert client.suspended
        server.start()
        restarted = time.monotonic()
        while client.suspended:
            # Well below kazoo's 12.8 s, with room for a loaded machine.
            assert time.monotonic() - restarted < 8.0, "no prompt reconnect"
            outage.wait(0.05)
        assert client.session_id == session
    finally:
        client.disconnect()
        server.stop()
