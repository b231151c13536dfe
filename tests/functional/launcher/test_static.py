"""The static driver against a real OpenSSH server on a loopback port.

Every host is ``127.0.0.1`` with ``connection-port`` set to a test sshd.  A
static host is identified by (name, username, connection-port), so one sshd
can stand for several hosts by varying ``username``.  The test plays Zuul
with ``env.zuul`` (raw kazoo).  Where a test must show that something did
NOT happen, it waits for two complete static syncs started after the
change (``full_sync``) instead of sleeping.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tests.functional.hostkeys import upstream_keys
from tests.functional.launcher.helpers import wait_for
from tests.functional.zuulview import host_entry
from tools.sshd import free_port

pytestmark = pytest.mark.functional

LAUNCHER_ID = "static driver"


def static_provider(*hosts, name="static", pool="main", **pool_extra):
    return {"name": name, "driver": "static",
            "pools": [{"name": pool, "nodes": list(hosts), **pool_extra}]}


def host(port, labels=("static-label",), username="zuul", **extra):
    entry = {"name": "127.0.0.1", "labels": list(labels),
             "username": username, "connection-port": port}
    entry.update(extra)
    return entry


def static_nodes(zuul, username=None, states=None):
    """{node id: data} of static nodes, optionally filtered."""
    return {i: n for i, n in zuul.nodes().items()
            if n.get("launcher") == LAUNCHER_ID
            and (username is None or n.get("username") == username)
            and (states is None or n.get("state") in states)}


def ready_slots(zuul, username=None):
    return sorted(n["slot"] for n in static_nodes(
        zuul, username, {"ready"}).values())


def manager_of(launcher, name="static"):
    return wait_for(lambda: launcher.provider_managers().get(name),
                    what=f"provider {name} running")


def full_sync(manager, timeout=30.0):
    """Return once a whole sync pass has started and finished after now."""
    slots = manager.adapter.slots
    for _ in range(2):   # the first may have been in flight already
        slots.synced.clear()
        slots.wake()
        wait_for(slots.synced.is_set, timeout=timeout, what="static sync")


def key_id(key):
    return " ".join(key.split()[:2])


@pytest.fixture
def counting_listener():
    """A TCP port that counts connections and never says anything."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.1)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    srv.close()
    for conn in accepted:
        conn.close()


# -- registration ------------------------------------------------------------

def test_slots_registered_with_scanned_host_keys(env, sshd):
    env.write_config([static_provider(host(sshd.port,
                                           **{"max-parallel-jobs": 3}))])
    env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul) == [0, 1, 2], what="three slots")
    for node in static_nodes(zuul).values():
        assert node["launcher"] == LAUNCHER_ID
        assert node["state"] == "ready"
        assert node["allocated_to"] is None
        assert node["provider"] == "static" and node["pool"] == "main"
        assert node["type"] == ["static-label"]
        assert node["hostname"] == "127.0.0.1"
        assert node["interface_ip"] == "127.0.0.1"
        assert node["external_id"] == "127.0.0.1"
        assert node["username"] == "zuul"
        assert node["connection_type"] == "ssh"
        assert node["connection_port"] == sshd.port
        assert node["ssh_port"] == sshd.port
        # Resolved from the name, as upstream; Zuul copies it to private.
        assert node["public_ipv4"] == "127.0.0.1"
        assert node["public_ipv6"] is None and node["private_ipv4"] is None
        # Upstream's static driver leaves the cloud fields unset.
        for key in ("cloud", "region", "az", "host_id", "resources",
                    "image_id", "attributes", "shell_type"):
            assert node[key] is None, key
        assert node["python_path"] == "auto"
        assert node["node_properties"] == {}
        # Every key upstream's nodescan records, in its order.
        assert node["host_keys"] == upstream_keys(sshd)
        # What a job sees, as Zuul 14.3 builds it: the address under
        # nodepool.public_ipv4 and (copied) private_ipv4, the known keys.
        entry = host_entry(node)
        job = entry["host_vars"]["nodepool"]
        assert job["public_ipv4"] == job["private_ipv4"] == "127.0.0.1"
        assert entry["host_vars"]["ansible_host"] == "127.0.0.1"
        assert entry["host_vars"]["ansible_port"] == sshd.port
        assert entry["host_keys"] == [f"[127.0.0.1]:{sshd.port} {k}"
                                      for k in upstream_keys(sshd)]


def test_host_key_checking_off_uses_configured_keys_without_connecting(
        env, counting_listener):
    port, accepted = counting_listener
    keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIConfiguredKeyOne",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABConfiguredKeyTwo"]
    env.write_config([static_provider(host(
        port, **{"host-key-checking": False, "host-key": keys}))])
    launcher = env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul) == [0], what="slot registered")
    (node,) = static_nodes(zuul).values()
    assert node["host_keys"] == keys
    # Handing it out does not connect either.
    rid = zuul.submit(["static-label"])
    zuul.wait_state(rid, {"fulfilled"})
    full_sync(manager_of(launcher))
    assert accepted == []


def test_host_key_not_offered_is_not_registered(env, sshd):
    good = [k + " comment-from-a-pub-file" for k in sshd.host_keys[:1]]
    bad = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyTheServerDoesNotHave"]
    env.write_config([static_provider(
        host(sshd.port, username="wrongkey", **{"host-key": bad}),
        host(sshd.port, username="rightkey", **{"host-key": good}))])
    launcher = env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul, "rightkey") == [0],
             what="host with the right key registered")
    full_sync(manager_of(launcher))
    assert static_nodes(zuul, "wrongkey") == {}
    (node,) = static_nodes(zuul, "rightkey").values()
    # The configured key (comment dropped) is among the scanned keys.
    assert key_id(good[0]) in node["host_keys"]


def test_address_of_the_name_is_stored_and_unresolvable_not_registered(
        env, sshd):
    """public_ipv4 / public_ipv6 come from the first address the name
    resolves to; a name that does not resolve is not registered, even
    when nothing is scanned (host-key-checking: false)."""
    unscanned = {"host-key-checking": False,
                 "host-key": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey"]}
    env.write_config([static_provider(
        {**host(sshd.port, username="named"), "name": "localhost"},
        {**host(22, username="six", **unscanned), "name": "::1"},
        {**host(22, username="nowhere", **unscanned),
         "name": "nodepool-test-host.invalid"})])
    launcher = env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul, "named") == [0]
             and ready_slots(zuul, "six") == [0], what="two hosts")
    full_sync(manager_of(launcher))
    assert static_nodes(zuul, "nowhere") == {}
    (named,) = static_nodes(zuul, "named").values()
    family, *_, sockaddr = socket.getaddrinfo("localhost", sshd.port)[0]
    field = "public_ipv4" if family == socket.AF_INET else "public_ipv6"
    other = "public_ipv6" if family == socket.AF_INET else "public_ipv4"
    assert named[field] == sockaddr[0] and named[other] is None
    assert named["interface_ip"] == "localhost"
    (six,) = static_nodes(zuul, "six").values()
    assert six["public_ipv6"] == "::1" and six["public_ipv4"] is None
    assert six["interface_ip"] == "::1"
    assert six["host_keys"] == unscanned["host-key"]


def test_ready_node_written_by_an_earlier_version_is_brought_in_line(
        env, sshd):
    """Earlier versions wrote cloud "static" and no address."""
    env.write_config([static_provider(host(sshd.port))])
    env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul) == [0], what="slot registered")
    (node_id,) = static_nodes(zuul)
    zuul.set_node(node_id, cloud="static", public_ipv4=None)
    wait_for(lambda: zuul.get_node(node_id)["public_ipv4"] == "127.0.0.1",
             what="address filled in")
    assert zuul.get_node(node_id)["cloud"] is None


# -- connection types without host keys -------------------------------------

def test_winrm_host_needs_only_tcp_and_has_no_host_keys(
        env, counting_listener):
    port, accepted = counting_listener
    # A host-key on a winrm host is not compared: nothing scans it.
    env.write_config([static_provider(host(
        port, username="Administrator", **{"connection-type": "winrm",
                                           "shell-type": "powershell",
                                           "python-path": "C:/py.exe",
                                           "host-key": "ssh-ed25519 AAAA"}))])
    env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul) == [0], what="winrm host registered")
    (node,) = static_nodes(zuul).values()
    assert node["connection_type"] == "winrm"
    assert node["connection_port"] == port
    assert node["shell_type"] == "powershell"
    assert node["python_path"] == "C:/py.exe"
    assert node["host_keys"] == []
    assert node["public_ipv4"] == "127.0.0.1"
    assert accepted, "the port was checked"
    rid = zuul.submit(["static-label"])
    (node_id,) = zuul.wait_state(rid, {"fulfilled"})["nodes"]
    assert zuul.get_node(node_id)["username"] == "Administrator"


def test_winrm_host_waits_for_its_port(env):
    """Nothing listening: not registered (host-key-checking or not, as
    upstream checks the port of a non-SSH host before registering it);
    registered once the port accepts connections."""
    port = free_port()
    env.write_config([static_provider(
        host(port, **{"connection-type": "winrm"}),
        host(port, username="unchecked", **{"connection-type": "winrm",
                                            "host-key-checking": False}))])
    launcher = env.start_launcher()
    zuul = env.zuul
    full_sync(manager_of(launcher))
    assert static_nodes(zuul) == {}
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", port))
        srv.listen(16)
        wait_for(lambda: ready_slots(zuul, "zuul") == [0]
                 and ready_slots(zuul, "unchecked") == [0],
                 what="both registered once the port is open")
    for node in static_nodes(zuul).values():
        assert node["host_keys"] == []


# -- requests and slot reuse ------------------------------------------------

def test_request_fulfilled_and_used_slot_replaced(env, sshd):
    env.write_config([static_provider(host(sshd.port))])
    env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul) == [0], what="slot registered")
    rid = zuul.submit(["static-label"])
    req = zuul.wait_state(rid, {"fulfilled"})
    (first,) = req["nodes"]
    node = zuul.get_node(first)
    assert node["allocated_to"] == rid and node["slot"] == 0
    assert node["launcher"] == LAUNCHER_ID
    nodes = zuul.accept(rid)
    zuul.set_in_use(nodes)
    # The only slot is busy: a second request waits (not declined).
    second = zuul.submit(["static-label"])
    zuul.release(nodes)                       # used + unlocked
    zuul.wait_node_gone(first)
    req2 = zuul.wait_state(second, {"fulfilled"})
    (replacement,) = req2["nodes"]
    assert replacement != first
    fresh = zuul.get_node(replacement)
    assert fresh["slot"] == 0 and fresh["hostname"] == "127.0.0.1"
    assert fresh["state"] == "ready"
    assert req2["declined_by"] == []


# -- configuration changes ---------------------------------------------------

def test_config_additions_removals_and_label_changes(env, sshd):
    env.write_config([static_provider(host(sshd.port, ["a"], "alpha"))])
    launcher = env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul, "alpha") == [0], what="alpha")
    (alpha_id,) = static_nodes(zuul, "alpha")
    # label change: the READY node follows, and serves the new label
    env.write_config([static_provider(host(sshd.port, ["a", "b"],
                                           "alpha"))])
    wait_for(lambda: zuul.get_node(alpha_id)["type"] == ["a", "b"],
             what="labels updated")
    # addition
    env.write_config([static_provider(
        host(sshd.port, ["a", "b"], "alpha"),
        host(sshd.port, ["b"], "beta", **{"max-parallel-jobs": 2}))])
    wait_for(lambda: ready_slots(zuul, "beta") == [0, 1], what="beta added")
    assert zuul.get_node(alpha_id)["state"] == "ready"
    # max-parallel-jobs lowered: the extra slot goes
    env.write_config([static_provider(
        host(sshd.port, ["a", "b"], "alpha"),
        host(sshd.port, ["b"], "beta"))])
    wait_for(lambda: ready_slots(zuul, "beta") == [0], what="beta shrunk")
    # removal
    env.write_config([static_provider(host(sshd.port, ["b"], "beta"))])
    wait_for(lambda: static_nodes(zuul, "alpha") == {}, what="alpha gone")
    full_sync(manager_of(launcher))
    assert ready_slots(zuul, "beta") == [0]
    rid = zuul.submit(["b"])
    (node_id,) = zuul.wait_state(rid, {"fulfilled"})["nodes"]
    assert zuul.get_node(node_id)["username"] == "beta"


def test_held_and_in_use_nodes_survive_host_removal(env, sshd):
    keep = host(sshd.port, ["other"], "keeper")
    doomed = host(sshd.port, username="doomed", **{"max-parallel-jobs": 3})
    env.write_config([static_provider(doomed, keep)])
    env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul, "doomed") == [0, 1, 2],
             what="three slots")
    rid = zuul.submit(["static-label", "static-label"])
    zuul.wait_state(rid, {"fulfilled"})
    in_use, held = zuul.accept(rid)
    zuul.set_in_use([in_use, held])
    zuul.release([held], state="hold")        # held and unlocked
    (spare,) = [i for i in static_nodes(zuul, "doomed", {"ready"})]

    env.write_config([static_provider(keep)])
    zuul.wait_node_gone(spare)                # the free slot is removed
    launcher = env.launchers[0]
    full_sync(manager_of(launcher))
    assert zuul.get_node(in_use)["state"] == "in-use"
    assert zuul.get_node(held)["state"] == "hold"
    # Once used, the in-use node goes and its slot is not registered again.
    zuul.release([in_use])
    zuul.wait_node_gone(in_use)
    full_sync(manager_of(launcher))
    assert set(static_nodes(zuul, "doomed")) == {held}


# -- liveness ----------------------------------------------------------------

def test_unreachable_host_deregistered_then_registered_again(
        env, sshd_factory):
    server = sshd_factory(port=free_port(), key_types=("ed25519",))
    server.start()
    env.write_config([static_provider(host(server.port))])
    launcher = env.start_launcher()
    zuul = env.zuul
    wait_for(lambda: ready_slots(zuul) == [0], what="slot registered")
    (before,) = static_nodes(zuul)

    server.kill()
    rid = zuul.submit(["static-label"])
    zuul.wait_node_gone(before)               # deregistered, not handed out
    full_sync(manager_of(launcher))
    assert static_nodes(zuul) == {}
    req = zuul.get_request(rid)
    assert req["state"] == "requested" and req["nodes"] == []

    server.start()
    req = zuul.wait_state(rid, {"fulfilled"}, timeout=30)
    (after,) = req["nodes"]
    assert after != before
    node = zuul.get_node(after)
    assert node["slot"] == 0 and node["host_keys"] == upstream_keys(server)


def test_requests_beyond_free_slots_are_deferred_not_accepted(env, sshd):
    env.write_config([static_provider(host(sshd.port))])
    env.start_launcher()
    zuul, client = env.zuul, env.client
    wait_for(lambda: ready_slots(zuul) == [0], what="slot registered")
    states: dict[str, list[str]] = {}

    def watch(rid):
        states[rid] = []
        client.DataWatch(f"/nodepool/requests/{rid}",
                         lambda d, s, e=None: d and states[rid].append(
                             json.loads(d)["state"]))
    rids = [zuul.submit(["static-label"]) for _ in range(3)]
    for rid in rids:
        watch(rid)
    served = []
    for _ in rids:
        # Exactly one request at a time is taken: the one with the slot.
        first = wait_for(lambda: [r for r in rids if r not in served and
                                  "fulfilled" in states[r]],
                         what="a request fulfilled")
        assert len(first) == 1, first
        (rid,) = first
        served.append(rid)
        nodes = zuul.accept(rid)
        for other in rids:
            if other not in served:
                assert "pending" not in states[other], states
        zuul.release(nodes)
    assert served == rids                      # in request order


def test_duplicate_slot_registration_is_removed(env, sshd):
    """As if a second launcher registered the same free slot at once."""
    env.write_config([static_provider(host(sshd.port,
                                           **{"max-parallel-jobs": 2}))])
    launcher = env.start_launcher()
    zuul, client = env.zuul, env.client
    wait_for(lambda: ready_slots(zuul) == [0, 1], what="two slots")
    (original,) = [i for i, n in static_nodes(zuul).items()
                   if n["slot"] == 1]
    twin = dict(zuul.get_node(original))
    path = client.create("/nodepool/nodes/", json.dumps(twin).encode(),
                         sequence=True)
    duplicate = path.rsplit("/", 1)[1]
    assert ready_slots(zuul) == [0, 1, 1]
    full_sync(manager_of(launcher))
    zuul.wait_node_gone(duplicate)
    assert ready_slots(zuul) == [0, 1]
    assert zuul.get_node(original)["state"] == "ready"
