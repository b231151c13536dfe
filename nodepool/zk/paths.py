"""Znode paths of zookeeper.md §2 (all relative to the client's chroot)."""

from __future__ import annotations

from urllib.parse import quote

NODES = "/nodepool/nodes"
REQUESTS = "/nodepool/requests"
REQUEST_LOCKS = "/nodepool/requests-lock"
COMPONENTS = "/nodepool/components"
IMAGES = "/nodepool/images"
STATS_ELECTION = "/nodepool/elections/stats"
# Not upstream's: this installation's id (``installation.py``).  Upstream
# launchers, builders and Zuul never read or remove it.
INSTALLATION = "/nodepool/installation"


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
# Not upstream's: offerings a cloud had no capacity for (pressure work).
# Upstream launchers and Zuul never read it.
OFFERINGS = "/nodepool/offerings"


def offering_path(provider: str, key: str) -> str:
    return f"{OFFERINGS}/{quote(provider, safe='')}:{quote(key, safe='')}"


# Not upstream's: one record per launcher serving a provider, heartbeated,
# from which each launcher computes its share of the provider's ``rate``
# (``nodepool.launcher.ratebudget``).  Upstream launchers and Zuul never
# read it.
RATE_BUDGET = "/nodepool/rate-budget"


def rate_budget_dir(provider: str) -> str:
    return f"{RATE_BUDGET}/{quote(provider, safe='')}"


# Not upstream's: why requests wait, one ephemeral record per request and
# pool worker (``waits.py``).  Upstream launchers and Zuul never read it.
REQUEST_WAITS = "/nodepool/request-waits"


def request_wait_path(name: str) -> str:
    return f"{REQUEST_WAITS}/{name}"


# Not upstream's: one ephemeral record per launcher summarising the nodes it
# created (provider, pool, state, labels, cost), so the other launchers and
# the stats leader need not read each of them
# (``nodepool.launcher.usagebook``).  Upstream launchers and Zuul never
# read it.
LAUNCHER_USAGE = "/nodepool/launcher-usage"


def launcher_usage_path(member: str) -> str:
    return f"{LAUNCHER_USAGE}/{member}"
