"""A requester that speaks the node-request protocol exactly as Zuul does.

Used by the functional tests, the demo and the benchmarks to play Zuul
against a running launcher (zookeeper.md §9).  It deliberately uses raw
kazoo and JSON rather than ``nodepool.zk``, so it checks the wire format
independently of our own data model.

    zuul = ZuulSim(kazoo_client)
    rid = zuul.submit(["ubuntu"])                 # step 1
    req = zuul.wait_state(rid, {"fulfilled"})     # step 2
    nodes = zuul.accept(rid)                      # steps 3-4: lock nodes, delete request
    zuul.set_in_use(nodes)                        # step 6
    zuul.release(nodes)                           # step 7: used + unlock

Without a thread waiting per request (a steady load, as ``tools.soak``):

    zuul.submit_async(["ubuntu"]).rawlink(created)   # the create's result
    zuul.watch_state(rid, {"fulfilled", "failed"}, done)  # done(rid, req, err)

Threads: the blocking calls run on the caller's thread; ``watch_state``'s
callback on kazoo's callback thread.  Failure story: kazoo's errors reach
the caller (``watch_state``: the callback's ``error``); a request that is
gone is None (``get_request``) or an AssertionError (``wait_state``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid

from kazoo.exceptions import NoNodeError

REQUESTS = "/nodepool/requests"
NODES = "/nodepool/nodes"


def _request(labels, relative_priority=0, provider=None, tenant=None,
             reuse=True, requestor="zuul-sim", extra: dict | None = None
             ) -> bytes:
    """A new request's znode data, as Zuul writes it."""
    now = time.time()
    data = {"state": "requested", "state_time": now,
            "node_types": list(labels), "nodes": [], "declined_by": [],
            "reuse": reuse, "requestor": requestor,
            "requestor_data": {"job": "sim"}, "provider": provider,
            "relative_priority": relative_priority,
            "event_id": uuid.uuid4().hex, "created_time": now,
            "tenant_name": tenant}
    data.update(extra or {})
    return json.dumps(data).encode()


class ZuulSim:
    def __init__(self, client):
        self.client = client
        self.node_locks: dict[str, object] = {}
        self.identifier = f"zuulsim-{uuid.uuid4().hex[:8]}"

    # -- requests ----------------------------------------------------------
    def submit(self, labels, priority: str = "200", relative_priority=0,
               provider=None, tenant=None, reuse=True, requestor="zuul-sim",
               extra: dict | None = None) -> str:
        data = _request(labels, relative_priority, provider, tenant, reuse,
                        requestor, extra)
        path = self.client.create(f"{REQUESTS}/{priority}-", data,
                                  sequence=True, makepath=True)
        return path.rsplit("/", 1)[1]

    def submit_many(self, labels, count: int, priority: str = "200"
                    ) -> list[str]:
        """``count`` requests for ``labels`` at once: the creates are
        pipelined, so a burst reaches ZooKeeper as fast as it takes it
        (one ``submit`` after another waits a round trip each)."""
        pending = [self.client.create_async(
            f"{REQUESTS}/{priority}-", _request(labels), sequence=True,
            makepath=True) for _ in range(count)]
        return [p.get(timeout=60).rsplit("/", 1)[1] for p in pending]

    def submit_async(self, labels, priority: str = "200"):
        """Create a request without waiting: the create's kazoo
        ``IAsyncResult`` (its value is the request's znode path)."""
        return self.client.create_async(f"{REQUESTS}/{priority}-",
                                        _request(labels), sequence=True,
                                        makepath=True)

    def watch_state(self, request_id: str, states, callback) -> None:
        """Call ``callback(request_id, request, error)`` once, when the
        request is in one of ``states`` (``request`` its data), is gone
        (``request`` None) or could not be read (``error``).  Nothing
        waits: each read is asynchronous and sets a data watch, and the
        watch's event reads again.  The callback runs on kazoo's callback
        thread and must not block."""
        path = f"{REQUESTS}/{request_id}"
        settled = threading.Event()

        def read(event=None) -> None:
            if not settled.is_set():
                self.client.get_async(path, watch=read).rawlink(got)

        def got(result) -> None:
            if settled.is_set():
                return
            try:
                data, _ = result.get_nowait()
            except NoNodeError:
                settled.set()
                callback(request_id, None, None)
                return
            except Exception as exc:   # connection loss, session expiry
                settled.set()
                callback(request_id, None, exc)
                return
            obj = json.loads(data)
            if obj.get("state") in states:
                settled.set()
                callback(request_id, obj, None)
        read()

    def get_request(self, request_id: str) -> dict | None:
        try:
            data, _ = self.client.get(f"{REQUESTS}/{request_id}")
        except NoNodeError:
            return None
        return json.loads(data)

    def set_request(self, request_id: str, **fields) -> None:
        path = f"{REQUESTS}/{request_id}"
        data, stat = self.client.get(path)
        obj = json.loads(data)
        obj.update(fields)
        self.client.set(path, json.dumps(obj).encode(), version=stat.version)

    def wait_state(self, request_id: str, states, timeout: float = 30.0
                   ) -> dict:
        """Wait (on a data watch) until the request is in one of ``states``."""
        changed = threading.Event()
        path = f"{REQUESTS}/{request_id}"
        deadline = time.monotonic() + timeout
        while True:
            changed.clear()
            try:
                data, _ = self.client.get(path, watch=lambda e: changed.set())
            except NoNodeError:
                raise AssertionError(f"request {request_id} vanished")
            obj = json.loads(data)
            if obj.get("state") in states:
                return obj
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"request {request_id} still "
                                   f"{obj.get('state')} after {timeout}s")
            changed.wait(min(remaining, 1.0))

    def delete_request(self, request_id: str) -> None:
        try:
            self.client.delete(f"{REQUESTS}/{request_id}")
        except NoNodeError:
            pass

    # -- nodes ---------------------------------------------------------------
    def get_node(self, node_id: str) -> dict | None:
        try:
            data, _ = self.client.get(f"{NODES}/{node_id}")
        except NoNodeError:
            return None
        return json.loads(data) if data else None

    def set_node(self, node_id: str, **fields) -> None:
        path = f"{NODES}/{node_id}"
        data, stat = self.client.get(path)
        obj = json.loads(data)
        obj.update(fields)
        obj["state_time"] = time.time()
        self.client.set(path, json.dumps(obj).encode(), version=stat.version)

    def lock_node(self, node_id: str, timeout: float = 10.0) -> None:
        lock = self.client.Lock(f"{NODES}/{node_id}/lock", self.identifier)
        if not lock.acquire(timeout=timeout):
            raise TimeoutError(f"could not lock node {node_id}")
        self.node_locks[node_id] = lock

    def unlock_node(self, node_id: str) -> None:
        lock = self.node_locks.pop(node_id, None)
        if lock is not None:
            lock.release()

    def accept(self, request_id: str) -> list[str]:
        """Lock the nodes of a fulfilled request, check them, delete it."""
        request = self.get_request(request_id)
        assert request and request["state"] == "fulfilled", request
        for node_id in request["nodes"]:
            self.lock_node(node_id)
            node = self.get_node(node_id)
            assert node["state"] == "ready", (node_id, node["state"])
            assert node["allocated_to"] == request_id, node
        self.delete_request(request_id)
        return list(request["nodes"])

    def set_in_use(self, node_ids) -> None:
        for node_id in node_ids:
            self.set_node(node_id, state="in-use")

    def release(self, node_ids, state: str = "used") -> None:
        for node_id in node_ids:
            self.set_node(node_id, state=state)
            self.unlock_node(node_id)

    def wait_node_gone(self, node_id: str, timeout: float = 30.0) -> None:
        gone = threading.Event()
        deadline = time.monotonic() + timeout
        while True:
            gone.clear()
            if self.client.exists(f"{NODES}/{node_id}",
                                  watch=lambda e: gone.set()) is None:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"node {node_id} still exists")
            gone.wait(min(remaining, 1.0))

    def nodes(self) -> dict[str, dict]:
        try:
            ids = self.client.get_children(NODES)
        except NoNodeError:
            return {}
        out = {}
        for node_id in ids:
            node = self.get_node(node_id)
            if node is not None:
                out[node_id] = node
        return out
