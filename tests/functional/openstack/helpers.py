"""Config builders and lookups shared by the OpenStack functional tests."""

from __future__ import annotations

import json

import openstack.config
import openstack.connection


def provider(name: str = "os", pools=None, labels=None,
             pool_extra: dict | None = None, **extra) -> dict:
    """An OpenStack provider on the local cloud ``fake``.

    ``rate: 0`` (unlimited) keeps tests fast; rate spacing has its own
    tests.  Pools skip the keyscan unless a test turns it on.
    """
    labels = labels or [label()]
    pool = {"name": "main", "max-servers": 10, "host-key-checking": False,
            "auto-floating-ip": False, "labels": labels}
    pool.update(pool_extra or {})
    config = {
        "name": name, "driver": "openstack", "cloud": "fake",
        "region-name": "RegionOne", "rate": 0, "boot-timeout": 10,
        "cloud-images": [{"name": "jammy", "image-name": "ubuntu-jammy",
                          "username": "zuul"}],
        "pools": pools or [pool],
    }
    config.update({k.replace("_", "-"): v for k, v in extra.items()})
    return config


def label(name: str = "small", **extra) -> dict:
    entry = {"name": name, "cloud-image": "jammy", "flavor-name": "m1.small"}
    entry.update({k.replace("_", "-"): v for k, v in extra.items()})
    return entry


def adapter_of(launcher, name: str = "os"):
    return launcher.provider_managers()[name].adapter


def connect(clouds_yaml: str, name: str = "fake"):
    """An SDK connection of the test itself (to plant leaks)."""
    config = openstack.config.OpenStackConfig(config_files=[clouds_yaml])
    return openstack.connection.Connection(config=config.get_one(cloud=name))


def servers_by_node(cloud) -> dict[str, dict]:
    return {s["metadata"].get("nodepool_node_id"): s
            for s in cloud.servers()}


def pool_paused(client, name: str = "main") -> bool:
    path = "/nodepool/components/pool"
    if not client.exists(path):
        return False
    for child in client.get_children(path):
        data, _ = client.get(f"{path}/{child}")
        if data and json.loads(data).get("name") == name and \
                json.loads(data).get("paused"):
            return True
    return False


def post_count(cloud) -> int:
    return cloud.stats()["calls"].get("POST /compute/v2.1/servers", 0)


class NodeStates:
    """Every state each node znode passed through, seen via ZK watches."""

    def __init__(self, client):
        self.client = client
        self.seen: dict[str, list[str]] = {}
        self._watched: set[str] = set()
        client.ensure_path("/nodepool/nodes")
        client.ChildrenWatch("/nodepool/nodes", self._children)

    def _children(self, children):
        for child in children:
            if child not in self._watched:
                self._watched.add(child)
                self.client.DataWatch(f"/nodepool/nodes/{child}",
                                      self._data(child))

    def _data(self, node_id: str):
        def watch(data, stat):
            if data is None:
                return False
            try:
                state = json.loads(data).get("state")
            except ValueError:
                return True
            states = self.seen.setdefault(node_id, [])
            if not states or states[-1] != state:
                states.append(state)
            return True
        return watch

    def with_state(self, state: str) -> list[str]:
        return [n for n, states in self.seen.items() if state in states]
