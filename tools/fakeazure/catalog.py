"""What the fake region offers: VM sizes, quotas/usages, gallery images.

- ``GET .../providers/Microsoft.Compute/skus`` lists resource SKUs with the
  ``vCPUs``/``MemoryGB`` capabilities and VM ``family`` a driver needs to
  cost a label; ``$filter=location eq 'x'`` narrows the locations.
- ``GET .../locations/{loc}/vmSizes`` is the older cores/memory listing.
- ``GET .../locations/{loc}/usages`` reports ``cores`` (Total Regional
  vCPUs), ``virtualMachines`` and one entry per VM family, counted from the
  VMs that exist now (a Failed VM still holds its cores, as in Azure) against
  ``Behaviour.quota_limits``.
- Shared and community gallery image versions, seeded from Python with
  :meth:`Catalog.add_gallery_image_version`.

A location the fake was not told about answers 400
LocationNotAvailableForResourceType, as an unsupported region would.
"""

from __future__ import annotations

import datetime
import re
from typing import Optional

from . import arm
from .routes import Call, Reply, Router
from .store import ArmError, norm_location

COMPUTE = arm.SUB + "/providers/Microsoft.Compute"
LOC = COMPUTE + "/locations/{location}"

# name: (vCPUs, memory GiB, quota family)
DEFAULT_VM_SIZES: dict[str, tuple[int, float, str]] = {
    "Standard_B1ls": (1, 0.5, "standardBSFamily"),
    "Standard_B1s": (1, 1, "standardBSFamily"),
    "Standard_B1ms": (1, 2, "standardBSFamily"),
    "Standard_B2s": (2, 4, "standardBSFamily"),
    "Standard_B2ms": (2, 8, "standardBSFamily"),
    "Standard_D2s_v3": (2, 8, "standardDSv3Family"),
    "Standard_D4s_v3": (4, 16, "standardDSv3Family"),
    "Standard_D8s_v3": (8, 32, "standardDSv3Family"),
    "Standard_D2as_v4": (2, 8, "standardDASv4Family"),
    "Standard_D2s_v5": (2, 8, "standardDSv5Family"),
    "Standard_F2s_v2": (2, 4, "standardFSv2Family"),
    "Standard_E2s_v3": (2, 16, "standardESv3Family"),
}
DEFAULT_LOCATIONS = ("westus", "eastus", "centralus")
T_VM = "Microsoft.Compute/virtualMachines"


def family_label(family: str) -> str:
    core = re.sub(r"^standard|Family$", "", family)
    return f"Standard {core} Family vCPUs"


class Catalog:
    """Sizes, locations and gallery images; read under the store lock."""

    def __init__(self, vm_sizes: Optional[dict] = None,
                 locations: tuple[str, ...] = DEFAULT_LOCATIONS) -> None:
        self.vm_sizes = dict(vm_sizes or DEFAULT_VM_SIZES)
        self.locations = tuple(norm_location(loc) for loc in locations)
        self.galleries: dict[tuple[str, str, str], dict[str, dict]] = {}

    def size(self, name: str) -> Optional[tuple[int, float, str]]:
        for size, spec in self.vm_sizes.items():
            if size.lower() == name.lower():
                return spec
        return None

    def check_location(self, location: str, rtype: str = T_VM) -> str:
        loc = norm_location(location)
        if loc not in self.locations:
            raise ArmError(400, "LocationNotAvailableForResourceType",
                           f"The provided location '{location}' is not "
                           f"available for resource type '{rtype}'. List of "
                           f"available regions for the resource type is "
                           f"'{','.join(self.locations)}'.")
        return loc

    # -- galleries ---------------------------------------------------------
    def add_gallery_image_version(
            self, gallery: str, image: str, version: str, *,
            community: bool = False, location: Optional[str] = None,
            published: Optional[datetime.datetime] = None,
            end_of_life: Optional[datetime.datetime] = None,
            exclude_from_latest: bool = False) -> dict:
        kind = "community" if community else "shared"
        prefix = "CommunityGalleries" if community else "SharedGalleries"
        published = published or datetime.datetime.now(datetime.timezone.utc)
        props = {"publishedDate": published.isoformat(),
                 "excludeFromLatest": exclude_from_latest,
                 "storageProfile": {"osDiskImage": {
                     "diskSizeGB": 30, "hostCaching": "ReadWrite"}}}
        if end_of_life:
            props["endOfLifeDate"] = end_of_life.isoformat()
        body = {"name": version,
                "location": norm_location(location or self.locations[0]),
                "identifier": {"uniqueId": f"/{prefix}/{gallery}/Images/"
                                           f"{image}/Versions/{version}"},
                "properties": props}
        key = (kind, gallery.lower(), image.lower())
        self.galleries.setdefault(key, {})[version] = body
        return body

    def gallery_versions(self, kind: str, gallery: str, image: str
                         ) -> Optional[dict[str, dict]]:
        return self.galleries.get((kind, gallery.lower(), image.lower()))

    def resolve_gallery_image(self, kind: str, image_id: str) -> dict:
        """The version a VM's ``sharedGalleryImageId`` etc. refers to."""
        parts = image_id.strip("/").split("/")
        versions = None
        if len(parts) >= 4:
            versions = self.gallery_versions(kind, parts[1], parts[3])
        wanted = parts[5] if len(parts) >= 6 else "latest"
        if versions:
            if wanted.lower() == "latest":
                usable = [v for v in versions.values()
                          if not v["properties"]["excludeFromLatest"]]
                if usable:
                    return max(usable, key=lambda v: _version_key(v["name"]))
            elif wanted in versions:
                return versions[wanted]
        raise ArmError(404, "GalleryImageNotFound",
                       f"The gallery image {image_id} is not available.")


def _version_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in name.split("."))


# -- usage --------------------------------------------------------------------

def usage(azure, location: str) -> dict[str, int]:
    """Current usage by quota name in ``location``."""
    counts = {"cores": 0, "virtualMachines": 0}
    for family in {spec[2] for spec in azure.catalog.vm_sizes.values()}:
        counts[family] = 0
    for vm in azure.store.of_type(T_VM):
        if vm["location"] != norm_location(location):
            continue
        spec = azure.catalog.size(vm["properties"]["hardwareProfile"]
                                  ["vmSize"])
        cores = spec[0] if spec else 0
        counts["cores"] += cores
        counts["virtualMachines"] += 1
        if spec:
            counts[spec[2]] = counts.get(spec[2], 0) + cores
    return counts


def _usage_entry(name: str, current: int, limit: int) -> dict:
    labels = {"cores": "Total Regional vCPUs",
              "virtualMachines": "Virtual Machines"}
    return {"unit": "Count", "currentValue": current, "limit": limit,
            "name": {"value": name,
                     "localizedValue": labels.get(name, family_label(name))}}


def list_usages(call: Call) -> Reply:
    azure = call.azure
    location = azure.catalog.check_location(call.params["location"])
    current = usage(azure, location)
    names = ["cores", "virtualMachines"] + sorted(
        n for n in current if n not in ("cores", "virtualMachines"))
    return arm.page(call, [
        _usage_entry(n, current[n], azure.behaviour.quota(n)) for n in names])


# -- sizes and SKUs -----------------------------------------------------------

def _sku(name: str, spec: tuple, locations: list[str]) -> dict:
    vcpus, memory, family = spec
    caps = {"vCPUs": vcpus, "vCPUsAvailable": vcpus, "MemoryGB": f"{memory:g}",
            "MaxDataDiskCount": max(2, vcpus * 2), "OSVhdSizeMB": 1047552,
            "MaxResourceVolumeMB": vcpus * 8192, "PremiumIO": "True",
            "HyperVGenerations": "V1,V2", "CpuArchitectureType": "x64",
            "LowPriorityCapable": "True", "AcceleratedNetworkingEnabled":
            "True" if vcpus >= 2 else "False"}
    return {"resourceType": "virtualMachines", "name": name,
            "tier": "Standard", "size": name.split("_", 1)[-1],
            "family": family, "locations": locations,
            "locationInfo": [{"location": loc, "zones": ["1", "2", "3"],
                              "zoneDetails": []} for loc in locations],
            "capabilities": [{"name": k, "value": str(v)}
                             for k, v in caps.items()],
            "restrictions": []}


def list_skus(call: Call) -> Reply:
    catalog = call.azure.catalog
    locations = list(catalog.locations)
    wanted = re.search(r"location\s+eq\s+'([^']*)'", call.q("$filter") or "",
                       re.IGNORECASE)
    if wanted:
        loc = norm_location(wanted.group(1))
        locations = [loc] if loc in catalog.locations else []
    items = [_sku(n, s, locations) for n, s in catalog.vm_sizes.items()] \
        if locations else []
    return arm.page(call, items)


def list_vm_sizes(call: Call) -> Reply:
    call.azure.catalog.check_location(call.params["location"])
    return arm.page(call, [
        {"name": name, "numberOfCores": vcpus,
         "memoryInMB": int(memory * 1024), "osDiskSizeInMB": 1047552,
         "resourceDiskSizeInMB": vcpus * 8192,
         "maxDataDiskCount": max(2, vcpus * 2)}
        for name, (vcpus, memory, _) in call.azure.catalog.vm_sizes.items()])


# -- gallery image versions ---------------------------------------------------

def _gallery_route(kind: str, gallery_param: str):
    def list_versions(call: Call) -> Reply:
        versions = call.azure.catalog.gallery_versions(
            kind, call.params[gallery_param], call.params["galleryImageName"])
        if versions is None:
            raise ArmError(404, "ResourceNotFound",
                           f"Gallery image {call.params['galleryImageName']} "
                           "was not found.")
        return arm.page(call, versions.values())

    def get_version(call: Call) -> Reply:
        versions = call.azure.catalog.gallery_versions(
            kind, call.params[gallery_param], call.params["galleryImageName"])
        name = call.params["galleryImageVersionName"]
        if not versions or name not in versions:
            raise ArmError(404, "ResourceNotFound",
                           f"Gallery image version {name} was not found.")
        return Reply(200, arm.public(versions[name]))
    return list_versions, get_version


def register(router: Router) -> None:
    router.add("GET", LOC + "/usages", list_usages)
    router.add("GET", LOC + "/vmSizes", list_vm_sizes)
    router.add("GET", COMPUTE + "/skus", list_skus)
    for kind, segment, param in (
            ("shared", "sharedGalleries", "galleryUniqueName"),
            ("community", "communityGalleries", "publicGalleryName")):
        base = (f"{LOC}/{segment}/{{{param}}}/images/{{galleryImageName}}"
                "/versions")
        list_versions, get_version = _gallery_route(kind, param)
        router.add("GET", base, list_versions)
        router.add("GET", base + "/{galleryImageVersionName}", get_version)
