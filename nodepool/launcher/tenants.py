"""tenant-resource-limits: defer a tenant's request while it is at its limit.

Usage is the sum of ``resources`` over every node (any provider) whose
``tenant_name`` matches, plus what the request would add (zookeeper.md §10).
"""

from __future__ import annotations

from nodepool.driver.quota import Quota


def tenant_allows(config, request, worker) -> bool:
    limits = config.tenant_resource_limits.get(request.tenant_name or "")
    if not request.tenant_name or not limits:
        return True
    used = Quota.total(Quota.from_resources(n.resources)
                       for n in worker.nodes_cached()
                       if n.tenant_name == request.tenant_name)
    need = Quota.total(worker.label_cost(worker.pool.labels[label])
                       for label in request.node_types
                       if label in worker.pool.labels)
    return need.fits(Quota(dict(limits)), used)
