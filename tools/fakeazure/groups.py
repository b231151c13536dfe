"""Resource groups and the generic resource listing (Microsoft.Resources).

A resource group PUT is synchronous (200 updated / 201 created), as in ARM.
Its DELETE is a long-running operation reported only through ``Location``
(``/subscriptions/{s}/operationresults/{id}``): the group shows
``provisioningState: Deleting`` until ``group_delete_latency`` has passed,
then it and everything in it are gone, without the per-resource checks
(a group delete in Azure removes attached NICs and disks all the same).
"""

from __future__ import annotations

import re
import urllib.parse

from . import arm
from .routes import Call, Reply, Router
from .store import ArmError, Operation, group_id, norm_location

GROUP = arm.SUB + "/resourcegroups/{resourceGroupName}"


def _group_not_found(name: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound",
                    f"Resource group '{name}' could not be found.")


def put_group(call: Call) -> Reply:
    body = call.json()
    name = call.params["resourceGroupName"]
    if not body.get("location"):
        raise ArmError(400, "LocationRequired",
                       "The location property is required for this "
                       "definition.")
    store = call.azure.store
    gid = group_id(call.azure.subscription_id, name)
    existing = store.get(gid)
    if existing is not None:
        if existing["properties"]["provisioningState"] == "Deleting":
            raise ArmError(409, "ResourceGroupBeingDeleted",
                           f"The resource group '{name}' is in deprovisioning"
                           " state and cannot perform this operation.")
        existing["tags"] = arm.tags_of(body)
        return Reply(200, arm.public(existing))
    group = store.put({
        "id": gid, "name": name, "type": "Microsoft.Resources/resourceGroups",
        "location": norm_location(body["location"]),
        "tags": arm.tags_of(body),
        "properties": {"provisioningState": "Succeeded"}})
    return Reply(201, arm.public(group))


def get_group(call: Call) -> Reply:
    name = call.params["resourceGroupName"]
    group = call.azure.store.get(group_id(call.azure.subscription_id, name))
    if group is None:
        raise _group_not_found(name)
    return Reply(200, arm.public(group))


def head_group(call: Call) -> Reply:
    name = call.params["resourceGroupName"]
    found = call.azure.store.get(group_id(call.azure.subscription_id, name))
    return Reply(204 if found else 404)


def list_groups(call: Call) -> Reply:
    return arm.page(call, call.azure.store.of_type(
        "Microsoft.Resources/resourceGroups"))


def delete_group(call: Call) -> Reply:
    name = call.params["resourceGroupName"]
    store = call.azure.store
    gid = group_id(call.azure.subscription_id, name)
    group = store.get(gid)
    if group is None:
        raise _group_not_found(name)
    group["properties"]["provisioningState"] = "Deleting"

    def complete(op: Operation) -> None:
        prefix = store.key(gid) + "/"
        for body in store.all():
            if store.key(body["id"]).startswith(prefix):
                store.remove(body["id"])
        store.remove(gid)

    op = arm.begin(call, "Microsoft.Resources", group["location"], gid,
                   "group-delete", call.azure.behaviour.group_delete_latency,
                   complete)
    location = (f"{call.azure.base_url}/subscriptions/"
                f"{call.azure.subscription_id}/operationresults/{op.id}"
                f"?api-version={urllib.parse.quote(call.api_version)}")
    return Reply(202, None, {"Location": location})


# -- generic resources --------------------------------------------------------

_CLAUSE = re.compile(r"(\w+)\s+eq\s+'([^']*)'", re.IGNORECASE)


def _filtered(call: Call, items: list[dict]) -> list[dict]:
    """The $filter clauses drivers use: resourceType, tagName/tagValue."""
    clauses = {k.lower(): v for k, v in _CLAUSE.findall(call.q("$filter")
                                                        or "")}
    out = []
    for body in items:
        wanted_type = clauses.get("resourcetype", "").lower()
        if wanted_type and body.get("type", "").lower() != wanted_type:
            continue
        tags = body.get("tags") or {}
        if "tagname" in clauses:
            if clauses["tagname"] not in tags:
                continue
            if "tagvalue" in clauses and \
                    tags[clauses["tagname"]] != clauses["tagvalue"]:
                continue
        out.append(body)
    return out


def _summary(body: dict) -> dict:
    keys = ("id", "name", "type", "location", "tags")
    return {k: body[k] for k in keys if k in body}


def list_resources(call: Call) -> Reply:
    store = call.azure.store
    if "resourceGroupName" in call.params:
        group = arm.require_group(call)
        scope = store.key(group["id"]) + "/"
    else:
        scope = store.key(f"/subscriptions/{call.azure.subscription_id}/")
    items = [b for b in store.all()
             if store.key(b["id"]).startswith(scope)
             and b.get("type") != "Microsoft.Resources/resourceGroups"]
    return arm.page(call, _filtered(call, items), _summary)


def register(router: Router) -> None:
    router.add("PUT", GROUP, put_group)
    router.add("GET", GROUP, get_group)
    router.add("HEAD", GROUP, head_group)
    router.add("DELETE", GROUP, delete_group)
    router.add("GET", arm.SUB + "/resourcegroups", list_groups)
    router.add("GET", GROUP + "/resources", list_resources)
    router.add("GET", arm.SUB + "/resources", list_resources)
