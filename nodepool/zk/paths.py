"""Znode paths of zookeeper.md §2 (all relative to the client's chroot)."""

from __future__ import annotations

NODES = "/nodepool/nodes"
REQUESTS = "/nodepool/requests"
REQUEST_LOCKS = "/nodepool/requests-lock"
COMPONENTS = "/nodepool/components"
IMAGES = "/nodepool/images"
STATS_ELECTION = "/nodepool/elections/stats"


def node_path(node_id: str) -> str:
    return f"{NODES}/{node_id}"


def node_lock_path(node_id: str) -> str:
    return f"{NODES}/{node_id}/lock"


def request_path(request_id: str) -> str:
    return f"{REQUESTS}/{request_id}"


def request_lock_path(request_id: str) -> str:
    return f"{REQUEST_LOCKS}/{request_id}"


def component_dir(kind: str) -> str:
    return f"{COMPONENTS}/{kind}"
