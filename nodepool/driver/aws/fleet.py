"""Fleet launches: CreateFleet (type ``instant``) over a launch template.

A label with ``fleet: {instance-types, allocation-strategy}`` lets EC2
pick the instance type.  CreateFleet needs a launch template, so the
launch settings (AMI, key, network, userdata, volumes, IMDS, ...) go into
one, named after a hash of its content: a config change makes a new
template, an unchanged one is reused, also across launcher restarts
(``AlreadyExists`` means "already made").  The fleet call itself carries
the per-node tags (TagSpecifications on the instance), the instance type
overrides (with priorities for ``prioritized``) and the capacity type:
spot when the label says ``use-spot``, on-demand otherwise.

One node per call: a fleet's answer does not number its instances, so
the batch mapping of ``batchtags`` would not hold; fleet labels are never
batched.

Failure story: an instant fleet reports launch failures in ``Errors``
rather than raising; with no instance started, the first error code is
classified like any EC2 error (capacity → node aborted, ...).  Templates
are left in place (they cost nothing and a restart reuses them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from nodepool.driver import errors
from nodepool.driver.aws import params
from nodepool.driver.aws.errors import classify, error_code
from nodepool.driver.statemachine import LaunchSpec

if TYPE_CHECKING:  # pragma: no cover
    from nodepool.driver.aws.adapter import AwsAdapter

__all__ = ["FleetCreator", "template_data", "fleet_params"]

log = logging.getLogger(__name__)


def template_data(spec: LaunchSpec, image: dict) -> dict[str, Any]:
    """LaunchTemplateData for a fleet label (no type: the fleet picks)."""
    data = params.launch_params(spec, image)
    data.pop("InstanceType", None)
    # Spot is the fleet's capacity type; a template asking for it too is
    # refused by CreateFleet.
    data.pop("InstanceMarketOptions", None)
    if "UserData" in data:   # templates take it base64-encoded
        data["UserData"] = base64.b64encode(
            data["UserData"].encode()).decode()
    data["TagSpecifications"] = params.tag_specifications(
        params.shared_tags(spec), ("volume",))
    return data


def template_name(provider: str, data: dict) -> str:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    safe = re.sub(r"[^A-Za-z0-9().\-/_]", "_", provider)[:80]
    return f"nodepool-{safe}-{digest.hexdigest()[:16]}"


def fleet_params(spec: LaunchSpec, template: str, token: str
                 ) -> dict[str, Any]:
    fleet = spec.label.settings["fleet"]
    strategy = fleet["allocation-strategy"]
    overrides = []
    for priority, itype in enumerate(fleet["instance-types"]):
        override: dict[str, Any] = {"InstanceType": itype}
        if strategy == "prioritized":
            override["Priority"] = float(priority)
        overrides.append(override)
    spot = bool(spec.label.settings.get("use-spot"))
    call: dict[str, Any] = {
        "LaunchTemplateConfigs": [{
            "LaunchTemplateSpecification": {"LaunchTemplateName": template,
                                            "Version": "$Latest"},
            "Overrides": overrides}],
        "TargetCapacitySpecification": {
            "TotalTargetCapacity": 1,
            "DefaultTargetCapacityType": "spot" if spot else "on-demand"},
        "Type": "instant",
        "ClientToken": token,
        "TagSpecifications": params.tag_specifications(
            params.all_tags(spec), ("instance",)),
    }
    options = {"AllocationStrategy": strategy}
    call["SpotOptions" if spot else "OnDemandOptions"] = options
    return call


class FleetCreator:
    """Sends CreateFleet for one node; returns a minimal instance record."""

    def __init__(self, adapter: "AwsAdapter"):
        self.adapter = adapter
        self._lock = threading.Lock()
        self._templates: set[str] = set()

    def send_one(self, spec: LaunchSpec) -> dict:
        image = self.adapter.images.resolve(spec.label,
                                            spec.image_external_id)
        name = self._template(template_data(spec, image))
        answer = self.adapter.api.mutate(
            "create_fleet", **fleet_params(spec, name, uuid.uuid4().hex))
        ids = [iid for group in answer.get("Instances") or []
               for iid in group.get("InstanceIds") or []]
        for extra in ids[1:]:   # never expected with capacity 1
            log.error("Fleet for node %s started extra instance %s; "
                      "deleting it", spec.node_id, extra)
            self.adapter.delete_now(extra)
        if ids:
            return {"InstanceId": ids[0]}
        raise self._failure(answer.get("Errors") or [])

    def _template(self, data: dict) -> str:
        name = template_name(self.adapter.provider.name, data)
        with self._lock:
            if name in self._templates:
                return name
        try:
            self.adapter.api.mutate("create_launch_template",
                                    LaunchTemplateName=name,
                                    LaunchTemplateData=data)
        except errors.DriverError as e:
            if error_code(e.__cause__) != \
                    "InvalidLaunchTemplateName.AlreadyExistsException":
                raise
        with self._lock:
            self._templates.add(name)
        return name

    @staticmethod
    def _failure(fleet_errors: list[dict]) -> errors.DriverError:
        if not fleet_errors:
            return errors.LaunchError("CreateFleet started no instance",
                                      stat_key="error.unknown")
        first = fleet_errors[0]
        error = ClientError({"Error": {"Code": first.get("ErrorCode", ""),
                                       "Message": first.get("ErrorMessage",
                                                            "")}},
                            "CreateFleet")
        return classify(error, "CreateFleet")
