"""Small helpers shared by the AWS functional tests."""

from __future__ import annotations

import json


#: top-level config of a launcher a test kills: its session expires soon
KILLABLE = {"zookeeper-timeout": 4.0}


def node_data(client, node_id: str) -> dict:
    """The node's record as stored, or {} (gone, empty or unreadable)."""
    try:
        data, _ = client.get(f"/nodepool/nodes/{node_id}")
    except Exception:
        return {}
    return json.loads(data) if data else {}


def adapter_of(launcher, provider: str = "aws"):
    """The live AwsAdapter of a running launcher's provider."""
    return launcher.provider_managers()[provider].adapter


def pool_components(client) -> list[dict]:
    path = "/nodepool/components/pool"
    if not client.exists(path):
        return []
    out = []
    for child in client.get_children(path):
        data, _ = client.get(f"{path}/{child}")
        if data:
            out.append(json.loads(data))
    return out


def pool_paused(client, name: str = "main") -> bool:
    return any(c.get("name") == name and c.get("paused")
               for c in pool_components(client))


def tags(record: dict) -> dict:
    return {t["Key"]: t["Value"] for t in record.get("Tags") or []}


def instance_id(node: dict) -> str | None:
    """The instance id of a node's ``external_id``, in either shape
    (upstream's ``{"instance": ...}`` or the old plain string)."""
    external = node.get("external_id")
    if isinstance(external, dict):
        return external.get("instance")
    return external
