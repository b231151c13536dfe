"""ARM conventions shared by every resource type in the fake.

- Long-running operations: a PUT answers 200/201 with the resource body and an
  ``Azure-AsyncOperation`` header; a DELETE answers 202 with
  ``Azure-AsyncOperation`` and ``Location``.  The status monitor
  (``.../locations/{loc}/operations/{id}``) answers ``{"status":
  "InProgress"|"Succeeded"|"Failed"|"Canceled", "error"?}``; the ``Location``
  monitor (``?monitor=true`` or ``operationResults``) answers 202 until done,
  then 200, or the operation's error with a 4xx/5xx status.  This is what
  azure-mgmt-core's ``ARMPolling`` expects.
- Lists are ``{"value": [...], "nextLink"?}`` pages of ``page_size`` items.
- A DELETE of a missing resource answers 204 (ARM deletes are idempotent);
  anything under a missing resource group answers 404 ResourceGroupNotFound.
"""

from __future__ import annotations

import copy
import urllib.parse
from typing import Callable, Iterable, Optional

from .behaviour import format_seconds
from .routes import Call, Reply, Router
from .store import ArmError, Operation, group_id, norm_location

SUB = "/subscriptions/{subscriptionId}"
RG = SUB + "/resourceGroups/{resourceGroupName}"


def require_group(call: Call) -> dict:
    name = call.params["resourceGroupName"]
    group = call.azure.store.get(group_id(call.azure.subscription_id, name))
    if group is None:
        raise ArmError(404, "ResourceGroupNotFound",
                       f"Resource group '{name}' could not be found.")
    return group


def rid(call: Call, provider: str, rtype: str, name_param: str) -> str:
    """The canonical id for the resource a call addresses."""
    return (f"/subscriptions/{call.azure.subscription_id}/resourceGroups/"
            f"{call.params['resourceGroupName']}/providers/{provider}/"
            f"{rtype}/{call.params[name_param]}")


def begin(call: Call, provider: str, location: str, resource_id: str,
          kind: str, latency: float,
          complete: Callable[[Operation], None],
          error: Optional[dict] = None) -> Operation:
    store = call.azure.store
    op = Operation(provider=provider, location=norm_location(location),
                   resource_id=resource_id, kind=kind,
                   due=store.clock() + max(0.0, float(latency)),
                   complete=complete, error=error)
    return store.begin(op)


def monitor_url(call: Call, op: Operation) -> str:
    return (f"{call.azure.base_url}/subscriptions/"
            f"{call.azure.subscription_id}/providers/{op.provider}/"
            f"locations/{op.location}/operations/{op.id}"
            f"?api-version={urllib.parse.quote(call.api_version)}")


def lro_headers(call: Call, op: Operation, location: bool) -> dict[str, str]:
    monitor = monitor_url(call, op)
    headers = {"Azure-AsyncOperation": monitor}
    if location:
        headers["Location"] = monitor + "&monitor=true"
    return headers


def page(call: Call, items: Iterable[dict],
         render: Callable[[dict], dict] = copy.deepcopy) -> Reply:
    """One page of a list, with a nextLink when more remain."""
    items = list(items)
    size = max(1, int(call.azure.behaviour.page_size))
    try:
        start = int(call.q("$skiptoken") or 0)
    except ValueError:
        raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.")
    body: dict = {"value": [render(i) for i in items[start:start + size]]}
    if start + size < len(items):
        query = dict(call.query)
        query["$skiptoken"] = str(start + size)
        body["nextLink"] = (f"{call.azure.base_url}{call.path}?"
                            f"{urllib.parse.urlencode(query)}")
    return Reply(200, body)


def public(body: dict) -> dict:
    return copy.deepcopy(body)


def tags_of(body: dict) -> dict:
    tags = body.get("tags") or {}
    if not isinstance(tags, dict):
        raise ArmError(400, "InvalidRequestContent",
                       "'tags' must be an object.")
    return {str(k): str(v) for k, v in tags.items()}


# -- operation status monitors ----------------------------------------------

def _find(call: Call) -> Operation:
    op = call.azure.store.operation(call.params["operationId"])
    if op is None:
        raise ArmError(404, "NotFound",
                       f"Operation {call.params['operationId']} not found.")
    return op


def _in_progress_headers(call: Call) -> dict[str, str]:
    after = call.azure.behaviour.lro_retry_after
    return {"Retry-After": format_seconds(after)} if after else {}


def operation_status(call: Call) -> Reply:
    if (call.q("monitor") or "").lower() == "true":
        return operation_result(call)
    op = _find(call)
    headers = _in_progress_headers(call) if op.status == "InProgress" else {}
    return Reply(200, op.status_body(), headers)


def operation_result(call: Call) -> Reply:
    op = _find(call)
    if op.status == "InProgress":
        headers = _in_progress_headers(call)
        headers["Location"] = f"{call.azure.base_url}{call.path}?" + \
            urllib.parse.urlencode(call.query)
        return Reply(202, None, headers)
    if op.status == "Succeeded":
        return Reply(200, None)
    error = op.error or {"code": "OperationFailed", "message": op.status}
    return Reply(409 if op.status == "Canceled" else 500, {"error": error})


def register_monitors(router: Router) -> None:
    base = SUB + "/providers/{provider}/locations/{location}"
    router.add("GET", base + "/operations/{operationId}", operation_status)
    router.add("GET", base + "/operationResults/{operationId}",
               operation_result)
    router.add("GET", base + "/asyncoperations/{operationId}",
               operation_status)
    router.add("GET", SUB + "/operationresults/{operationId}",
               operation_result)
