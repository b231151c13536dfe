"""All record types of the data model in one import."""

from .component import (MODEL_API, Component, ComponentState,  # noqa: F401
                        LauncherComponent, PoolComponent)
from .errors import (BadZnode, LockedObjectGone, LockError,  # noqa: F401
                     NotFound, ZooKeeperError)
from .image import ImageUpload, ImageUploadState  # noqa: F401
from .node import Node, NodeState  # noqa: F401
from .request import (DEFAULT_PRIORITY, MIN_READY_PRIORITY,  # noqa: F401
                      NodeRequest, RequestState)

__all__ = ["MODEL_API", "Component", "ComponentState", "LauncherComponent",
           "PoolComponent", "BadZnode", "LockedObjectGone", "LockError",
           "NotFound", "ZooKeeperError", "ImageUpload", "ImageUploadState",
           "Node", "NodeState", "DEFAULT_PRIORITY", "MIN_READY_PRIORITY",
           "NodeRequest", "RequestState"]
