"""Small helpers shared by the Azure functional tests."""

from __future__ import annotations

import json

from tests.functional.launcher.helpers import wait_for


def adapter_of(launcher, provider: str = "azure"):
    """The live AzureAdapter of a running launcher's provider."""
    return launcher.provider_managers()[provider].adapter


def fulfil(env, labels, **kw) -> tuple[str, dict]:
    rid = env.zuul.submit(labels, **kw)
    req = env.zuul.wait_state(rid, {"fulfilled", "failed"})
    assert req["state"] == "fulfilled", req
    return rid, req


def release_all(env, rid) -> list[str]:
    nodes = env.zuul.accept(rid)
    env.zuul.set_in_use(nodes)
    env.zuul.release(nodes)
    for node_id in nodes:
        env.zuul.wait_node_gone(node_id, timeout=20)
    return nodes


def pool_paused(client, name: str = "main") -> bool:
    path = "/nodepool/components/pool"
    if not client.exists(path):
        return False
    for child in client.get_children(path):
        data, _ = client.get(f"{path}/{child}")
        if data:
            component = json.loads(data)
            if component.get("name") == name and component.get("paused"):
                return True
    return False


def wait_gone(azure, kind: str, names, timeout: float = 60.0) -> None:
    names = set(names)
    wait_for(lambda: not (azure.names(kind) & names), timeout=timeout,
             what=f"{kind} {sorted(names)} deleted")
