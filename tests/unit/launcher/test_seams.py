"""The launcher's workers read of the daemon only what their protocols
declare, and the daemon (``Launcher``) and the ZooKeeper facade really
provide it: a new use of the daemon is added to the protocol, where it is
visible, instead of widening the seam unseen."""

from __future__ import annotations

import pytest

from nodepool.launcher import (cleanup, deleter, minready, periodic,
                               poolworker, statsleader)
from nodepool.launcher.launcher import Launcher
from nodepool.zk.zookeeper import ZooKeeper
from tests.protocols import (different_parameters, missing_members,
                             protocol_members, uses)

#: (module, class, the name it keeps its collaborator under, the protocol
#: it is typed as, what the launcher hands it)
USERS = [
    ("nodepool.launcher.periodic", "PeriodicWorker", "daemon",
     periodic.Session, Launcher),
    ("nodepool.launcher.deleter", "DeletedNodeWorker", "daemon",
     deleter.Daemon, Launcher),
    ("nodepool.launcher.cleanup", "CleanupWorker", "daemon",
     cleanup.Daemon, Launcher),
    ("nodepool.launcher.minready", "MinReady", "daemon",
     minready.Daemon, Launcher),
    ("nodepool.launcher.minready", "MinReady", "zk",
     minready.Store, ZooKeeper),
    ("nodepool.launcher.statsleader", "StatsElection", "daemon",
     statsleader.Daemon, Launcher),
    ("nodepool.launcher.poolworker", "PoolWorker", "launcher",
     poolworker.LauncherSide, Launcher),
]
IDS = [f"{cls}.{name}" for _, cls, name, _, _ in USERS]


@pytest.mark.parametrize("module,cls,name,proto,real", USERS, ids=IDS)
def test_uses_nothing_beyond_its_protocol(module, cls, name, proto, real):
    undeclared = uses(module, cls, name) - protocol_members(proto)
    assert not undeclared, (
        f"{cls} reads {sorted(undeclared)} of its {name}, which "
        f"{proto.__module__}.{proto.__name__} does not declare")


@pytest.mark.parametrize("module,cls,name,proto,real", USERS, ids=IDS)
def test_what_it_is_handed_provides_the_protocol(module, cls, name, proto,
                                                 real):
    missing = missing_members(proto, real)
    assert not missing, f"{real.__name__} lacks {sorted(missing)}"
    differ = different_parameters(proto, real, strict=False)
    assert not differ, (f"{real.__name__} does not take the parameters of "
                        f"{proto.__name__} in {differ}")
