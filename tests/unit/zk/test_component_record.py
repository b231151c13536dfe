"""Component records: sorted keys, whole-object payloads (zookeeper.md
§8.1)."""

import json

from nodepool.zk import LauncherComponent, PoolComponent


def test_pool_component_keys_sorted_and_complete():
    component = PoolComponent(hostname="h1", id="h1-PoolWorker.p-main-x",
                              name="main", provider_name="p",
                              supported_labels=["a", "b"], priority=50,
                              version="1.0")
    text = component.to_json().decode()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data == {"hostname": "h1", "state": "initializing",
                    "kind": "pool", "version": "1.0", "model_api": 0,
                    "id": "h1-PoolWorker.p-main-x", "name": "main",
                    "provider_name": "p", "supported_labels": ["a", "b"],
                    "priority": 50, "paused": False}


def test_launcher_component_and_unknown_keys():
    component = LauncherComponent.from_dict(
        {"hostname": "h", "state": "running", "kind": "launcher",
         "version": "9", "model_api": 0, "zone": "z1"}, path="/x")
    assert component.kind == "launcher" and component.path == "/x"
    assert component.to_dict()["zone"] == "z1"
