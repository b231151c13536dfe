"""Component znodes as upstream Nodepool 11 writes them and Zuul 14.3 reads
them (parity item 2: the pool component's ``version`` was empty).

Upstream registers ``/nodepool/components/launcher/<host>-<seq>`` and one
``/nodepool/components/pool/<host>-<seq>`` per pool worker, each holding
``hostname``, ``state``, ``kind``, ``version`` (the running release) and
``model_api``; a pool adds ``id``, ``name``, ``provider_name``,
``supported_labels``, ``priority`` and ``paused``.  Zuul's launcher view
(``zuul/zk/nodepool.py``) takes ``id`` and ``supported_labels`` of each pool.
"""

from __future__ import annotations

import json
import socket

from nodepool.version import __version__
from tests.functional.launcher.helpers import fake_provider, wait_for

BASE_KEYS = {"hostname", "state", "kind", "version", "model_api"}
POOL_KEYS = BASE_KEYS | {"id", "name", "provider_name", "supported_labels",
                         "priority", "paused"}


def _components(client, kind: str) -> list[dict]:
    root = f"/nodepool/components/{kind}"
    if not client.exists(root):
        return []
    out = []
    for child in client.get_children(root):
        data, _ = client.get(f"{root}/{child}")
        if data:
            out.append(json.loads(data))
    return out


def _zuul_launcher_view(component: dict) -> tuple:
    # What Zuul 14.3 keeps of a pool component.
    return component.get("id"), set(component.get("supported_labels", []))


def test_components_carry_upstreams_keys_and_a_version(env):
    pools = [{"name": "main", "max-servers": 5, "labels": [
        {"name": "small", "cloud-image": "fake-image"},
        {"name": "large", "cloud-image": "fake-image"}]}]
    env.write_config([fake_provider("p1", pools=pools)])
    launcher = env.start_launcher()
    wait_for(lambda: _components(env.client, "pool"), what="pool component")
    [launcher_c] = _components(env.client, "launcher")
    [pool] = _components(env.client, "pool")

    assert set(launcher_c) == BASE_KEYS
    assert set(pool) == POOL_KEYS
    for component, kind in ((launcher_c, "launcher"), (pool, "pool")):
        assert component["kind"] == kind
        assert component["version"] == __version__ != ""
        assert component["model_api"] == 0
        assert component["hostname"] == socket.gethostname()
        assert component["state"] == "running"
    assert pool["name"] == "main" and pool["provider_name"] == "p1"
    assert pool["priority"] == 100 and pool["paused"] is False
    [worker] = launcher.pool_workers().values()
    assert _zuul_launcher_view(pool) == (worker.id, {"small", "large"})
