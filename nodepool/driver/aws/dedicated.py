"""Dedicated-host labels: one host per node, the instance placed on it.

A ``dedicated-host`` label (its pool must name an ``availability-zone``,
and it excludes ``use-spot``: config checks) launches in two calls on one
create-pool worker: AllocateHosts (Quantity 1, the node's tags on the
host), then RunInstances with ``Placement.HostId`` and tenancy ``host``.
The node's ``external_id`` then names both: ``{"instance": <id>, "host":
<id>}``; deleting it terminates the instance, waits until it is gone
(EC2 refuses to release an occupied host) and releases the host.

Leak safety: the host is tagged at allocation with the node's tags, so a
host whose node is gone is found by ``list_resources`` (type ``hosts``)
and released.  If RunInstances fails, the worker releases the host at
once before raising the (classified) error; if that release fails too,
leak cleanup gets it later.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from nodepool.driver import errors
from nodepool.driver.aws import params
from nodepool.driver.aws.ports import CallPort
from nodepool.driver.statemachine import LaunchSpec

__all__ = ["DedicatedHostCreator", "split_external_id"]

log = logging.getLogger(__name__)


def split_external_id(external_id: Any) -> tuple[str | None, str | None]:
    """(instance id, host id) of a node's external_id (str or mapping)."""
    if isinstance(external_id, dict):
        return external_id.get("instance"), external_id.get("host")
    return external_id, None


class DedicatedHostCreator:
    def __init__(self, adapter: CallPort):
        self.adapter = adapter

    def send_one(self, spec: LaunchSpec) -> dict:
        """The instance record, with ``HostId`` of its new host."""
        api = self.adapter.api
        az = spec.pool.settings["availability-zone"]
        tags = params.all_tags(spec)
        image = self.adapter.images.resolve(spec.label,
                                            spec.image_external_id)
        answer = api.mutate(
            "allocate_hosts", AvailabilityZone=az, Quantity=1,
            InstanceType=spec.label.settings["instance-type"],
            ClientToken=uuid.uuid4().hex,
            TagSpecifications=params.tag_specifications(
                tags, ("dedicated-host",)))
        host = answer["HostIds"][0]
        call = params.launch_params(spec, image)
        call.update(MinCount=1, MaxCount=1, ClientToken=uuid.uuid4().hex,
                    TagSpecifications=params.tag_specifications(tags),
                    Placement={"AvailabilityZone": az, "HostId": host,
                               "Tenancy": "host"})
        try:
            record = api.mutate("run_instances", **call)["Instances"][0]
        except Exception:
            self.release_quietly(host)
            raise
        return {**record, "HostId": host}

    def release(self, host_id: str) -> None:
        """Release a host; NotFoundError when it does not exist."""
        answer = self.adapter.api.mutate("release_hosts", HostIds=[host_id])
        for failure in answer.get("Unsuccessful") or []:
            code = (failure.get("Error") or {}).get("Code", "")
            message = f"release of host {host_id} failed: {failure}"
            if code.endswith("NotFound"):
                raise errors.NotFoundError(message)
            raise errors.TransientError(message)

    def release_quietly(self, host_id: str) -> None:
        try:
            self.release(host_id)
        except errors.NotFoundError:
            pass
        except Exception as e:
            log.warning("Could not release host %s (leak cleanup will): %s",
                        host_id, e)
