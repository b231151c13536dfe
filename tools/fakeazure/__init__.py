"""A local Azure Resource Manager for tests, demos and benchmarks.

``LocalAzure`` serves, over HTTPS on 127.0.0.1, the Entra ID token endpoint
that azure-identity's ``ClientSecretCredential`` uses and the ARM subset a
node launcher needs: resource groups, virtual networks/subnets, public IPs,
NICs, VMs (long-running create/delete with cascade per ``deleteOption``),
disks, images, usages, resource SKUs and gallery image versions.  Latency,
throttling, failed operations, quota errors and 5xx can be injected.

Modules: ``server`` (LocalAzure, dispatch, control endpoints), ``https``
(TLS listener), ``identity`` (tokens), ``store`` (state and operations),
``arm`` (LRO/paging conventions), ``groups``, ``network``, ``compute``,
``disks``, ``catalog`` (sizes, usages, galleries), ``addresses`` (IP pools),
``behaviour`` (knobs, faults, stats), ``routes`` (routing).

Run standalone with ``python -m tools.fakeazure --port P --workdir D``.
"""

from .behaviour import Behaviour
from .server import LocalAzure

__all__ = ["Behaviour", "LocalAzure"]
