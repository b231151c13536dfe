"""Which NICs, public IPs, disks and images may have leaked (pure logic).

Leaked VMs are found by the launcher from ``list_instances`` and deleted
through the delete machine, which takes their NIC, addresses and disk
along.  What this module finds are the side resources that outlived their
VM or never got one: a launch that failed between its PUTs, a VM deleted
by hand with ``deleteOption: Detach``.

A resource is a candidate only when it carries our provider tag and is
*unattached*: a NIC no VM uses, a public IP no NIC uses, a disk no VM
manages.  Attached ones go with whatever holds them; deleting them
directly would only earn ``NicInUse``-style refusals.  The cleanup worker
then deletes a candidate whose node id it does not know on the second
consecutive pass that sees it (behaviour 33); a public IP on a leaked NIC
becomes a candidate on the pass after the NIC is gone.

Image uploads: a builder's upload makes a disk (written to, then turned
into an image) and a managed image, both tagged with our provider,
``nodepool_build_id`` and ``nodepool_upload_id``.  The disk is listed as
above; every image of the resource group carrying our provider tag is a
candidate too (an image is never attached).  The launcher deletes an
upload's disk or image on the second consecutive pass whose upload records
do not know its ``<build id>-<upload id>``, and never one that carries
neither a node id nor an upload id (upstream's rule, in the launcher).

Types (the ``nodepool.provider.<p>.leaked.<type>`` metric): ``nics``,
``pips``, ``disks``, ``images``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from nodepool.driver.instance import Resource

__all__ = ["LEAK_KINDS", "IMAGES", "attached", "candidates",
           "image_candidates"]

#: the kinds read from the adapter's shared listings
LEAK_KINDS = ("nics", "pips", "disks")
#: managed images (uploads), listed on their own
IMAGES = "images"


def attached(kind: str, record: Mapping) -> bool:
    props = record.get("properties") or {}
    if kind == "nics":
        return bool(props.get("virtualMachine"))
    if kind == "pips":
        return bool(props.get("ipConfiguration"))
    if kind == "disks":
        return bool(record.get("managedBy")) or \
            props.get("diskState", "Unattached") == "Attached"
    raise ValueError(f"unknown resource kind {kind!r}")


def candidates(kind: str, records: Iterable[Mapping], provider_name: str
               ) -> list[Resource]:
    """Unattached resources of ``kind`` tagged with our provider name."""
    return _ours(kind, (r for r in records if not attached(kind, r)),
                 provider_name)


def image_candidates(records: Iterable[Mapping], provider_name: str
                     ) -> list[Resource]:
    """Managed images tagged with our provider name."""
    return _ours(IMAGES, records, provider_name)


def _ours(kind: str, records: Iterable[Mapping], provider_name: str
          ) -> list[Resource]:
    out = []
    for record in records:
        tags = record.get("tags") or {}
        if tags.get("nodepool_provider_name") == provider_name:
            out.append(Resource(type=kind, id=record["name"],
                                metadata=dict(tags),
                                driver_data=record.get("id")))
    return out
