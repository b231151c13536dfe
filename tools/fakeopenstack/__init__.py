"""A local OpenStack cloud for tests, the demo and benchmarks.

One threaded HTTP server on 127.0.0.1 speaks the subset of Keystone v3,
Nova v2.1, Glance v2, Neutron v2.0 and Cinder v3 that openstacksdk uses for
a node launcher, with injectable latency, build times, quota and faults.
Start with :class:`LocalOpenStack`; run standalone with
``python -m tools.fakeopenstack --port P``.
"""

from tools.fakeopenstack.local import LocalOpenStack
from tools.fakeopenstack.records import CreateFailure, Settings

__all__ = ["LocalOpenStack", "Settings", "CreateFailure"]
