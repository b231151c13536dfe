"""A node znode as Zuul 14.3 reads it, for parity tests.

Zuul keeps every key of a node record (``zuul/model.py`` ``Node.updateFromDict``
sets each one as an attribute, with defaults for the keys a record lacks),
and its executor turns a node into an inventory host: ``ansible_host`` and
friends plus the ``nodepool`` job variables (``zuul/executor/server.py``
``getHostList``).  ``host_entry(record)`` rebuilds that entry from the raw
JSON the way Zuul does, so a test can compare what jobs see from our node
with what they would see from upstream's node for the same instance or host.

This is a description of Zuul's reading, written for the tests; no Zuul code
is imported or copied (Zuul is not a dependency of this project).
"""

from __future__ import annotations

from typing import Any

# Zuul's Node attribute defaults for keys a record does not carry.
NODE_DEFAULTS: dict[str, Any] = {
    "host_id": None, "interface_ip": None, "public_ipv4": None,
    "private_ipv4": None, "public_ipv6": None, "private_ipv6": None,
    "connection_port": 22, "connection_type": None, "username": None,
    "python_path": None, "shell_type": None, "slot": None, "az": None,
    "cloud": None, "provider": None, "region": None, "resources": None,
    "attributes": {}, "node_properties": {}, "host_keys": [],
}

# The ``nodepool`` job variables, in Zuul's order.
NODEPOOL_VARS = ("label", "az", "cloud", "provider", "region", "host_id",
                 "external_id", "slot", "interface_ip", "public_ipv4",
                 "private_ipv4", "public_ipv6", "private_ipv6",
                 "node_properties")


def zuul_node(record: dict) -> dict:
    """Zuul's attributes of a node: the defaults, then every key read."""
    node = dict(NODE_DEFAULTS)
    node.update({k: v for k, v in record.items()
                 if k not in ("name", "aliases")})
    return node


def host_entry(record: dict, label: str | None = None,
               default_username: str = "zuul") -> dict:
    """The inventory entry Zuul's executor builds from one node record."""
    node = zuul_node(record)
    label = label or (record.get("type") or [None])[0]
    port = node["connection_port"]
    nodepool = {
        "label": label,
        "az": node["az"], "cloud": node["cloud"],
        "provider": node["provider"], "region": node["region"],
        "host_id": node["host_id"], "external_id": node.get("external_id"),
        "slot": node["slot"], "interface_ip": node["interface_ip"],
        "public_ipv4": node["public_ipv4"],
        # Zuul's backwards-compatible rule for Nodepool nodes.
        "private_ipv4": node["private_ipv4"] or node["public_ipv4"],
        "public_ipv6": node["public_ipv6"],
        "private_ipv6": node["private_ipv6"],
        "node_properties": node["node_properties"],
    }
    host_vars = {"ansible_host": node["interface_ip"],
                 "ansible_user": node["username"] or default_username,
                 "ansible_port": port, "nodepool": nodepool,
                 "ansible_python_interpreter": node.get("python_path",
                                                        "auto")}
    if node["connection_type"]:
        host_vars["ansible_connection"] = node["connection_type"]
    if node["shell_type"]:
        host_vars["ansible_shell_type"] = node["shell_type"]
    keys = node["host_keys"] or []
    prefix = (node["interface_ip"] if port == 22
              else f"[{node['interface_ip']}]:{port}")
    if not keys:
        host_vars["ansible_ssh_common_args"] = \
            "-o StrictHostKeyChecking=false"
    return {"host_vars": host_vars,
            "host_keys": [f"{prefix} {k}" for k in keys]}
