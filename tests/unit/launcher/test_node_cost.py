"""ProviderManager.node_cost remembers costs per distinct resources, so the
memo does not grow with the nodes that come and go."""

from __future__ import annotations


from kazoo.protocol.states import ZnodeStat

from nodepool.driver.quota import Quota
from nodepool.launcher.provider import ProviderManager
from tests.unit.launcher.fakes import BareAdapter
from nodepool.zk.models import Node


def _stat(mzxid: int) -> ZnodeStat:
    return ZnodeStat(mzxid, mzxid, 0, 0, 1, 0, 0, 0, 10, 0, mzxid)


def test_cost_memo_stays_bounded_over_300_nodes():
    adapter = BareAdapter()
    manager = ProviderManager(adapter.provider, adapter, None, None, None)
    small = {"instances": 1, "cores": 2, "ram": 1024}
    large = {"instances": 1, "cores": 8, "ram": 8192}
    for i in range(300):
        # Each node goes through several znode versions, as in a launch.
        for version in range(4):
            node = Node(id=f"{i:010d}", provider="p",
                        resources=dict(large if i % 3 == 0 else small))
            node.stat = _stat(1000 * i + version)
            expected = large if i % 3 == 0 else small
            assert manager.node_cost(node) == Quota(expected)
    assert len(manager._cost_memo) == 2
