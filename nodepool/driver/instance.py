"""The one value type every adapter returns for a cloud instance.

``Instance`` is immutable data: actions on an instance belong to the adapter,
never to the value.  Each adapter maps its cloud's status strings onto the
small ``InstanceState`` enum with one table; a status it does not know becomes
``UNKNOWN`` and is logged by the adapter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping


class InstanceState(enum.Enum):
    PENDING = "pending"        # being created, not yet usable
    RUNNING = "running"        # up; addresses known
    STOPPING = "stopping"      # on its way out
    DELETED = "deleted"        # gone (or terminated)
    ERROR = "error"            # the cloud says it failed
    UNKNOWN = "unknown"        # status the adapter could not map


class Tagged:
    """What the launcher's tags on a cloud object name (upstream's keys)."""

    metadata: Mapping[str, str]

    @property
    def node_id(self) -> str | None:
        return self.metadata.get("nodepool_node_id")

    @property
    def provider_name(self) -> str | None:
        return self.metadata.get("nodepool_provider_name")


@dataclass(frozen=True)
class Instance(Tagged):
    """A cloud instance as the launcher needs to see it.

    ``external_id`` is what goes into the node's ``external_id`` (a string, or
    a mapping for drivers that track several cloud objects per node).
    ``metadata`` holds the tags/metadata the launcher put on it (used for
    leak detection: ``nodepool_node_id``, ``nodepool_provider_name``,
    ``nodepool_installation``, ...).
    ``resources`` is the quota the instance consumes (cores, instances, ram,
    plus driver extras) when the adapter can tell.  ``driver_data`` is opaque
    to the core.
    """

    external_id: Any
    state: InstanceState = InstanceState.UNKNOWN
    interface_ip: str | None = None
    public_ipv4: str | None = None
    private_ipv4: str | None = None
    public_ipv6: str | None = None
    az: str | None = None
    region: str | None = None
    cloud: str | None = None
    host_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, float] | None = None
    node_properties: Mapping[str, Any] = field(default_factory=dict)
    driver_data: Any = None


@dataclass(frozen=True)
class Resource(Tagged):
    """A cloud resource other than an instance that can leak.

    ``type`` is the plural resource type used in the
    ``nodepool.provider.<p>.leaked.<type>`` metric (``volumes``, ``ports``,
    ``floatingips``, ...).  ``metadata`` carries the tags the launcher's
    leak rule reads (``nodepool_provider_name`` with ``nodepool_node_id``,
    or with ``nodepool_build_id`` + ``nodepool_upload_id``).  A resource
    that can carry no tags (a Neutron port, a floating IP) is judged by the
    driver's own rule instead: ``orphan`` then says why the driver holds it
    leaked, and the launcher still deletes it only on the second pass that
    sees it.  ``upload_key`` is an upload's pair as the launcher matches
    it against the provider's upload records (``<build id>-<upload id>``).
    """

    type: str
    id: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    driver_data: Any = None
    orphan: str | None = None


    @property
    def upload_key(self) -> str | None:
        upload_id = self.metadata.get("nodepool_upload_id")
        if not upload_id:
            return None
        return f"{self.metadata.get('nodepool_build_id')}-{upload_id}"
