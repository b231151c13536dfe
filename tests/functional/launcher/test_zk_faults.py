"""ZooKeeper faults seen by a running launcher (zookeeper.md §1, §8.1).

Each test owns its ZooKeeper (standalone server or 3-server ensemble), since
it stops, kills or partitions it.  The launcher reaches a standalone server
through a ``TcpGate``: closing the gate is a network partition (the server
keeps running, so it expires the launcher's session after
``zookeeper-timeout``), which is the only way to lose a session against one
server; a restarted server restores its sessions from disk.  The test's own
"Zuul" client talks to the server directly and keeps working meanwhile.
"""

from __future__ import annotations

import threading

import pytest
import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.retry import KazooRetry

from nodepool.driver import fake
from nodepool.zk.client import RECONNECT_MAX_DELAY
from tests.functional.launcher.helpers import fake_provider, wait_for
from tools.zookeeper import TcpGate, ZooKeeperEnsemble, ZooKeeperServer
from tools.zuulsim import ZuulSim

pytestmark = pytest.mark.functional

COMPONENTS = "/nodepool/components"
NODES = "/nodepool/nodes"
REQUESTS = "/nodepool/requests"


class FaultEnv:
    """A launcher on ``launcher_ports`` and a Zuul on ``zuul_hosts``."""

    def __init__(self, tmp_path, launcher_ports: list[int],
                 zuul_hosts: str, timeout: float) -> None:
        self.config_path = str(tmp_path / "nodepool.yaml")
        self.ports = launcher_ports
        self.timeout = timeout
        # Zuul's side reconnects at most 1 s apart, as the launcher does:
        # kazoo's default back-off doubles, and after a server restart
        # under load its next attempt came after the session had expired.
        self.client = KazooClient(
            hosts=zuul_hosts, timeout=30.0,
            connection_retry=KazooRetry(max_tries=-1, delay=0.1,
                                        max_delay=RECONNECT_MAX_DELAY))
        self.client.start(timeout=15)
        self.zuul = ZuulSim(self.client)
        self.launcher = None

    def write_config(self, ports: list[int] | None = None,
                     min_ready: int = 0, boot_time: float = 0.0) -> None:
        data = {"zookeeper-servers": [{"host": "127.0.0.1", "port": p}
                                      for p in (ports or self.ports)],
                "zookeeper-timeout": self.timeout,
                "labels": [{"name": "small", "min-ready": min_ready}],
                "providers": [fake_provider(**{"boot-time": boot_time})]}
        with open(self.config_path + ".tmp", "w") as f:
            yaml.safe_dump(data, f)
        import os
        os.replace(self.config_path + ".tmp", self.config_path)

    def start_launcher(self, cleanup_interval: float = 60.0):
        from nodepool.launcher.launcher import Launcher
        self.launcher = Launcher(self.config_path, deleted_interval=0.5,
                                 cleanup_interval=cleanup_interval)
        self.launcher.start()
        wait_for(self.launcher.ready.is_set, what="launcher ready")
        return self.launcher

    def fulfil(self, timeout: float = 30.0) -> list[str]:
        """A request served end to end: submit, accept, use, release."""
        rid = self.zuul.submit(["small"])
        self.zuul.wait_state(rid, {"fulfilled"}, timeout=timeout)
        nodes = self.zuul.accept(rid)
        self.zuul.release(nodes)
        return nodes

    def owners(self, directory: str) -> dict[str, int]:
        """child name → ephemeral owner (session id) under ``directory``.

        A directory removed meanwhile (a deleted node's lock) has none.
        """
        out = {}
        try:
            names = self.client.get_children(directory)
        except NoNodeError:
            return out
        for name in names:
            stat = self.client.exists(f"{directory}/{name}")
            if stat is not None:
                out[name] = stat.ephemeralOwner
        return out

    def stop(self) -> None:
        if self.launcher is not None:
            self.launcher.stop()
        self.client.stop()
        self.client.close()


@pytest.fixture
def cloud():
    fake.CLOUDS.clear()
    cloud = fake.cloud_for("fake-provider")
    yield cloud
    fake.CLOUDS.clear()


@pytest.fixture
def gated(tmp_path, cloud):
    """(server, gate, env): a launcher behind a gate, timeout 4 s."""
    server = ZooKeeperServer(str(tmp_path / "zk")).start()
    gate = TcpGate(server.port).start()
    env = FaultEnv(tmp_path, [gate.port], server.hosts, timeout=4.0)
    yield server, gate, env
    env.stop()
    gate.stop()
    server.stop()


def _untouched_for(client, path: str, seconds: float) -> bool:
    """True when ``path``'s data did not change for ``seconds``."""
    changed = threading.Event()
    client.DataWatch(path, lambda data, stat, event=None:
                     changed.set() if event is not None else None)
    return not changed.wait(seconds)


def test_no_action_while_suspended_then_resumes(gated):
    """Partition shorter than the session: nothing is taken while cut
    off; the same session resumes and serves what was submitted."""
    server, gate, env = gated
    env.timeout = 10.0
    env.write_config()
    launcher = env.start_launcher()
    env.fulfil()
    session = launcher.client.session_id
    gate.close()
    wait_for(lambda: not launcher.zk_ready(), what="launcher suspended")
    rid = env.zuul.submit(["small"])
    assert _untouched_for(env.client, f"{REQUESTS}/{rid}", 2.0)
    assert env.zuul.get_request(rid)["state"] == "requested"
    gate.open()
    env.zuul.wait_state(rid, {"fulfilled"})
    assert launcher.client.session_id == session
    env.zuul.release(env.zuul.accept(rid))


def test_server_restart_resumes_same_session(tmp_path, cloud):
    """Server stopped and restarted on the same port and data: the
    server restores the session, the launcher waits while disconnected
    and then serves new requests in the same session."""
    server = ZooKeeperServer(str(tmp_path / "zk")).start()
    # A session timeout with room for a slow restart on a loaded machine
    # (at 4 s the server, once up, sometimes expired it before the
    # launcher's next attempt).
    env = FaultEnv(tmp_path, [server.port], server.hosts, timeout=10.0)
    try:
        env.write_config()
        launcher = env.start_launcher()
        env.fulfil()
        session = launcher.client.session_id
        server.stop()
        wait_for(lambda: not launcher.zk_ready(), what="launcher suspended")
        server.start()
        wait_for(launcher.zk_ready, timeout=30, what="launcher reconnected")
        env.fulfil()
        assert launcher.client.session_id == session
    finally:
        env.stop()
        server.stop()


def test_session_loss_fails_builds_and_recovers(gated, cloud):
    """Partition longer than the session: builds in flight fail, the new
    session re-registers components, re-creates min-ready and serves."""
    server, gate, env = gated
    env.write_config(min_ready=1, boot_time=600.0)  # builds hang booting
    launcher = env.start_launcher(cleanup_interval=1.0)
    rid = env.zuul.submit(["small"])
    wait_for(lambda: sum(1 for n in env.zuul.nodes().values()
                         if n.get("external_id")
                         and n["state"] == "building") >= 2,
             what="two nodes building (min-ready and zuul)")
    old_session = launcher.client.session_id
    old_nodes = set(env.zuul.nodes())
    assert set(env.owners(f"{COMPONENTS}/launcher").values()) == \
        {old_session}
    gate.close()
    # The server expires the session: our ephemeral components vanish.
    wait_for(lambda: not env.client.get_children(f"{COMPONENTS}/launcher"),
             timeout=20, what="session expired on the server")
    assert launcher.client.suspended and not launcher.zk_ready()
    building = {nid for nid, n in env.zuul.nodes().items()
                if n["state"] == "building"}
    assert building == old_nodes
    cloud.boot_time = 0.0   # the new session's launches boot at once
    gate.open()
    wait_for(lambda: launcher.client.session_id not in (None, old_session)
             and launcher.zk_ready(), timeout=20, what="a new session")
    new_session = launcher.client.session_id

    def registered():
        return (list(env.owners(f"{COMPONENTS}/launcher").values())
                == [new_session]
                and list(env.owners(f"{COMPONENTS}/pool").values())
                == [new_session])
    wait_for(registered, what="components re-registered")
    # Zuul's request is either retried and fulfilled or failed; never stuck.
    final = env.zuul.wait_state(rid, {"fulfilled", "failed"}, timeout=30)
    if final["state"] == "fulfilled":
        env.zuul.release(env.zuul.accept(rid))
    else:
        env.zuul.delete_request(rid)
    env.fulfil()
    assert registered(), "one launcher and one pool component, no copies"
    # min-ready: a spare READY node exists again (its request was
    # ephemeral and re-made in the new session).
    wait_for(lambda: any(n["state"] == "ready" and not n.get("allocated_to")
                         for n in env.zuul.nodes().values()),
             timeout=30, what="min-ready node")

    def no_old_locks():
        for node_id in env.client.get_children(NODES):
            lock = f"{NODES}/{node_id}/lock"
            if not env.client.exists(lock):
                continue
            if old_session in env.owners(lock).values():
                return False
        return True
    assert no_old_locks()

    def no_orphans():
        nodes = env.zuul.nodes()
        ids = {n.get("external_id") for n in nodes.values()}
        # every cloud instance has a node, and the builds of the lost
        # session were failed and removed
        return set(cloud.instances) <= ids and not (old_nodes & set(
            nid for nid, n in nodes.items() if n["state"] == "building"))
    wait_for(no_orphans, timeout=30, what="no orphaned instance or node")
    assert launcher._thread.is_alive()
    for worker in launcher.pool_workers().values():
        assert worker._thread.is_alive()


def _connected_port(launcher) -> int | None:
    sock = getattr(launcher.client.kazoo._connection, "_socket", None)
    try:
        return sock.getpeername()[1] if sock is not None else None
    except OSError:
        return None


def test_ensemble_member_killed_and_hosts_reloaded(tmp_path, cloud):
    """Kill -9 the member the launcher is connected to: it moves to
    another member in the same session and keeps serving; a reload that
    drops the dead member from zookeeper-servers is applied live."""
    ensemble = ZooKeeperEnsemble(str(tmp_path / "ens"), size=3).start()
    ports = [s.port for s in ensemble.servers]
    env = FaultEnv(tmp_path, ports, ensemble.hosts, timeout=10.0)
    try:
        env.write_config()
        launcher = env.start_launcher()
        env.fulfil()
        session = launcher.client.session_id
        port = _connected_port(launcher)
        assert port in ports, "cannot tell which member the launcher uses"
        victim = ports.index(port)
        ensemble.kill(victim)
        wait_for(lambda: _connected_port(launcher) in ports
                 and _connected_port(launcher) != ports[victim]
                 and launcher.zk_ready(), timeout=30,
                 what="launcher on another member")
        for _ in range(3):
            env.fulfil()
        assert launcher.client.session_id == session
        # Reload: drop the dead member from zookeeper-servers.
        alive = [p for i, p in enumerate(ports) if i != victim]
        env.write_config(ports=alive)
        wait_for(lambda: sorted(p for _, p in launcher.client.kazoo.hosts)
                 == sorted(alive), what="zookeeper-servers reloaded")
        env.fulfil()
    finally:
        env.stop()
        ensemble.stop()
