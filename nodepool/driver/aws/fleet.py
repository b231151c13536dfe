"""Fleet labels: CreateFleet (type ``instant``) over a launch template.

A label with ``fleet: {instance-types, allocation-strategy}`` lets EC2
pick the instance type.  CreateFleet needs a launch template, so the
label's launch settings (key, network, userdata, volumes, IMDS, volume
tags, ...) go into one; the AMI and the zone go into the call's overrides
instead, so the template depends on the configuration only and a new
image never makes a new template.  As upstream Nodepool does, templates
are named ``nodepool-launch-template-<sha256>`` after a hash of their
content and tags, and tagged ``nodepool_managed`` and
``nodepool_provider_name`` (and our ``nodepool_installation``, which is in
the hash too, so two installations sharing the account and the provider
name never share a template): an unchanged label reuses its template, also
across launcher restarts (``AlreadyExists`` means "already made"), a
config change makes a new one.  The root volume settings name the image's
root device but carry no snapshot or size of the image (EC2 merges them
with the AMI's own mapping of that device).

The fleet call itself carries the per-node tags (TagSpecifications on the
instance), the instance type overrides (with priorities for
``prioritized``) and the capacity type: spot when the label says
``use-spot``, on-demand otherwise.

One node per call: a fleet's answer does not number its instances, so
the batch mapping of ``batchtags`` would not hold; fleet labels are never
batched.

Unused templates (upstream's rule, once per provider start; here on the
provider's first leak-cleanup pass): the templates named with our prefix
and tagged with our provider name that no fleet label of the current
configuration yields are deleted; a provider without fleet labels leaves
them alone, as upstream's does.  A template tagged with another
installation is never deleted (its labels are not in our configuration);
one without an installation tag (upstream's, or ours from an older
release) follows the rule.  A diskimage label's template is
computed with the root device builders register (``/dev/sda1``); when a
cloud image cannot be resolved nothing is deleted (a template in use must
never go), and a template a launch used since the start is kept.

Failure story: an instant fleet reports launch failures in ``Errors``
rather than raising; with no instance started, the first error code is
classified like any EC2 error (capacity → node aborted, ...).  A template
that is gone when CreateFleet names it (deleted by another launcher with a
newer configuration, or by hand) is created again and the call repeated
once.  A failed clean-up of templates is logged and tried again on the
next pass.

Threads: ``send_one`` runs on the create pool, ``clean_templates_once`` on
the cleanup worker; the set of known templates is guarded by ``_lock``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import uuid
from typing import Any

from botocore.exceptions import ClientError

from nodepool.driver import errors
from nodepool.driver import installation as installation_tag
from nodepool.driver.aws import params
from nodepool.driver.aws.errors import classify, error_code
from nodepool.driver.aws.ports import FleetPort
from nodepool.driver.backoff import log_failure
from nodepool.driver.statemachine import LaunchSpec

__all__ = ["FleetCreator", "template_data", "template_args",
           "template_name", "fleet_params", "TEMPLATE_PREFIX"]

log = logging.getLogger(__name__)

#: upstream Nodepool's launch template name prefix
TEMPLATE_PREFIX = "nodepool-launch-template-"
#: the root device builders register uploads with (diskimage labels)
BUILDER_ROOT_DEVICE = "/dev/sda1"
#: keys of the launch parameters that go into the fleet call instead
_NOT_IN_TEMPLATE = ("ImageId", "InstanceType", "InstanceMarketOptions",
                    "Placement", "BlockDeviceMappings")
_TEMPLATE_GONE = frozenset({"InvalidLaunchTemplateName.NotFoundException",
                            "InvalidLaunchTemplateName.NotFound",
                            "InvalidLaunchTemplateId.NotFound"})


def template_data(spec: LaunchSpec, image: dict) -> dict[str, Any]:
    """LaunchTemplateData for a fleet label: no type (the fleet picks),
    no AMI and no zone (the call's overrides carry them)."""
    data = params.launch_params(spec, image)
    for key in _NOT_IN_TEMPLATE:
        # Spot is the fleet's capacity type; a template asking for it too
        # is refused by CreateFleet.
        data.pop(key, None)
    # The root device of the image, the volume settings of the label: the
    # AMI's own snapshot and size are merged in by EC2.
    mappings = params.block_device_mappings(
        spec.label.settings, {"RootDeviceName": image.get("RootDeviceName")})
    if mappings:
        data["BlockDeviceMappings"] = mappings
    if "UserData" in data:   # templates take it base64-encoded
        data["UserData"] = base64.b64encode(
            data["UserData"].encode()).decode()
    data["TagSpecifications"] = params.tag_specifications(
        params.shared_tags(spec), ("volume",))
    return data


def template_args(provider: str, data: dict,
                  installation: str | None = None) -> dict[str, Any]:
    """CreateLaunchTemplate's arguments but the name (tagged as
    upstream's: ``nodepool_managed``, ``nodepool_provider_name``; and
    with our installation)."""
    tags = {"nodepool_managed": "True", "nodepool_provider_name": provider}
    if installation:
        tags[installation_tag.TAG] = installation
    return {"LaunchTemplateData": data,
            "TagSpecifications": params.tag_specifications(
                tags, ("launch-template",))}


def template_name(args: dict) -> str:
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode())
    return TEMPLATE_PREFIX + digest.hexdigest()


def fleet_params(spec: LaunchSpec, template: str, token: str,
                 image_id: str, az: str | None = None) -> dict[str, Any]:
    fleet = spec.label.settings["fleet"]
    strategy = fleet["allocation-strategy"]
    overrides = []
    for priority, itype in enumerate(fleet["instance-types"]):
        override: dict[str, Any] = {"InstanceType": itype,
                                    "ImageId": image_id}
        if az:
            override["AvailabilityZone"] = az
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
    """Sends CreateFleet for one node; returns a minimal instance record.
    Keeps the provider's launch templates (see the module docstring)."""

    def __init__(self, adapter: FleetPort):
        self.adapter = adapter
        self._lock = threading.Lock()
        self._templates: set[str] = set()      # known to exist
        self._used: set[str] = set()           # named by a launch
        self._cleaned = False
        self.templates_deleted = 0

    def send_one(self, spec: LaunchSpec) -> dict:
        image = self.adapter.images.resolve(spec.label,
                                            spec.image_external_id)
        args = template_args(self.adapter.provider.name,
                             template_data(spec, image),
                             self.adapter.installation)
        name = self._template(args)
        az = (params.launch_params(spec, image).get("Placement")
              or {}).get("AvailabilityZone")
        call = fleet_params(spec, name, uuid.uuid4().hex, image["ImageId"],
                            az)
        try:
            answer = self.adapter.api.mutate("create_fleet", **call)
        except errors.DriverError as e:
            if error_code(e.__cause__) not in _TEMPLATE_GONE:
                raise
            log.warning("Launch template %s is gone; creating it again",
                        name)
            with self._lock:
                self._templates.discard(name)
            self._template(args)
            answer = self.adapter.api.mutate("create_fleet", **call)
        ids = [iid for group in answer.get("Instances") or []
               for iid in group.get("InstanceIds") or []]
        for extra in ids[1:]:   # never expected with capacity 1
            log.error("Fleet for node %s started extra instance %s; "
                      "deleting it", spec.node_id, extra)
            self.adapter.delete_now(extra)
        if ids:
            return {"InstanceId": ids[0]}
        raise self._failure(answer.get("Errors") or [])

    def _template(self, args: dict) -> str:
        name = template_name(args)
        with self._lock:
            self._used.add(name)
            if name in self._templates:
                return name
        try:
            self.adapter.api.mutate("create_launch_template",
                                    LaunchTemplateName=name, **args)
            log.info("Created launch template %s", name)
        except errors.DriverError as e:
            if error_code(e.__cause__) != \
                    "InvalidLaunchTemplateName.AlreadyExistsException":
                raise
        with self._lock:
            self._templates.add(name)
        return name

    # -- unused templates ------------------------------------------------------
    def configured_templates(self) -> set[str] | None:
        """Names of the templates the fleet labels of the configuration
        use; None when one cannot be computed (its image unresolvable) or
        when there is no fleet label (upstream then leaves templates be)."""
        provider = self.adapter.provider
        names = set()
        fleets = False
        for pool in provider.pools.values():
            for label in pool.labels.values():
                if not label.settings.get("fleet"):
                    continue
                fleets = True
                spec = LaunchSpec(node_id="", hostname="",
                                  provider_name=provider.name, pool=pool,
                                  label=label,
                                  installation=self.adapter.installation)
                if label.diskimage:
                    image = {"ImageId": "",
                             "RootDeviceName": BUILDER_ROOT_DEVICE}
                else:
                    try:
                        image = self.adapter.images.resolve(label)
                    except errors.DriverError as e:
                        log.info("Not cleaning launch templates: the image "
                                 "of label %s is unknown (%s)", label.name,
                                 e)
                        return None
                names.add(template_name(template_args(
                    provider.name, template_data(spec, image),
                    self.adapter.installation)))
        return names if fleets else None

    def clean_templates_once(self) -> None:
        """``clean_templates`` on the first call that gets through."""
        with self._lock:
            if self._cleaned:
                return
            self._cleaned = True
        try:
            self.clean_templates()
        except errors.DriverError as e:
            log_failure(log, e, "Could not clean launch templates of "
                        "provider %s: %s", self.adapter.provider.name, e)
            with self._lock:
                self._cleaned = False

    def clean_templates(self) -> int:
        """Delete our templates no label uses; returns how many."""
        configured = self.configured_templates()
        if configured is None:
            return 0
        provider = self.adapter.provider.name
        existing = self.adapter.api.read_pages(
            "describe_launch_templates", "LaunchTemplates", Filters=[{
                "Name": "launch-template-name",
                "Values": [TEMPLATE_PREFIX + "*"]}])
        deleted = 0
        for template in existing:
            name = template["LaunchTemplateName"]
            if not name.startswith(TEMPLATE_PREFIX):
                continue
            with self._lock:
                if name in configured:
                    self._templates.add(name)   # reuse without a create
                    continue
                if name in self._used:
                    continue
            tags = {t["Key"]: t["Value"] for t in template.get("Tags") or []}
            if tags.get("nodepool_provider_name") != provider or \
                    installation_tag.foreign(tags, self.adapter.installation):
                continue
            log.info("Deleting unused launch template %s of provider %s",
                     name, provider)
            try:
                self.adapter.api.mutate("delete_launch_template",
                                        LaunchTemplateName=name)
            except errors.DriverError as e:
                if error_code(e.__cause__) not in _TEMPLATE_GONE:
                    raise
            deleted += 1
        self.templates_deleted += deleted
        return deleted

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
