"""ZooKeeper data model: the wire contract shared with upstream Nodepool and
Zuul (paths, JSON records, locks, components).

``client``     connection, TLS, session state
``zookeeper``  the ``ZooKeeper`` facade (stores + caches)
``models``     ``Node``, ``NodeRequest``, components, image uploads, states
``errors``     the exception tree
"""

from .client import ZooKeeperClient, build_hosts
from .component import (MODEL_API, Component, ComponentState,
                        LauncherComponent, PoolComponent)
from .errors import (BadZnode, LockedObjectGone, LockError, NotFound,
                     ZooKeeperError)
from .image import ImageUpload, ImageUploadState
from .node import Node, NodeState
from .request import (DEFAULT_PRIORITY, MIN_READY_PRIORITY, NodeRequest,
                      RequestState)
from .zookeeper import ZooKeeper

__all__ = ["ZooKeeperClient", "ZooKeeper", "build_hosts", "MODEL_API",
           "Component", "ComponentState", "LauncherComponent",
           "PoolComponent", "BadZnode", "LockedObjectGone", "LockError",
           "NotFound", "ZooKeeperError", "ImageUpload", "ImageUploadState",
           "Node", "NodeState", "DEFAULT_PRIORITY", "MIN_READY_PRIORITY",
           "NodeRequest", "RequestState"]
