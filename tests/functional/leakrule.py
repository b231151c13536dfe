"""Upstream Nodepool's leak rule, applied by a test over one adapter.

The launcher's cleanup worker owns the rule; these tests exercise the
driver side (``list_resources`` / ``delete_resource``) against real local
clouds, and this small, faithful statement of upstream's rule (its
launcher's ``cleanupLeakedResources``) decides what is deleted:

- a resource whose ``nodepool_provider_name`` is not ours is ignored;
- with ``nodepool_node_id``: leaked iff no node of the provider has that id;
- with ``nodepool_upload_id``: leaked iff ``<build id>-<upload id>`` is not
  among the provider's upload records in ZooKeeper (any state);
- with neither: never leaked;
- a leaked resource is deleted on the second consecutive pass that finds
  it leaked, never on the first.
"""

from __future__ import annotations


class UpstreamLeakRule:
    def __init__(self, adapter, provider: str, zk):
        self.adapter = adapter
        self.provider = provider
        self.zk = zk
        self._nodes: set[str] = set()
        self._uploads: set[str] = set()

    def known(self) -> tuple[set[str], set[str]]:
        nodes = {n.id for n in self.zk.iter_nodes(cached=False)
                 if n.provider == self.provider}
        uploads = {f"{u.build_id}-{u.id}" for u in
                   self.zk.iter_image_uploads(provider=self.provider)}
        return nodes, uploads

    def run_pass(self) -> list:
        """One pass; returns the resources deleted."""
        known_nodes, known_uploads = self.known()
        leaked_nodes: set[str] = set()
        leaked_uploads: set[str] = set()
        deleted = []
        for resource in self.adapter.list_resources():
            if resource.provider_name != self.provider:
                continue
            node_id = resource.node_id
            if node_id and node_id not in known_nodes:
                leaked_nodes.add(node_id)
                if node_id in self._nodes:
                    self.adapter.delete_resource(resource)
                    deleted.append(resource)
            key = resource.upload_key
            if key and key not in known_uploads:
                leaked_uploads.add(key)
                if key in self._uploads:
                    self.adapter.delete_resource(resource)
                    deleted.append(resource)
        self._nodes = leaked_nodes
        self._uploads = leaked_uploads
        return deleted


def write_upload(client, image: str, build_id: str, provider: str,
                 upload_id: str, state: str = "ready", **fields) -> None:
    """An upload record as a builder writes it, through our zk models."""
    import time

    from nodepool.zk.image import ImageUpload, upload_path
    upload = ImageUpload(image=image, build_id=build_id, provider=provider,
                         id=upload_id, state=state, state_time=time.time(),
                         external_name=image, format="raw",
                         username="zuul", **fields)
    client.create(upload_path(image, build_id, provider, upload_id),
                  upload.to_json(), makepath=True)


def upload_tags(provider: str, build_id: str, upload_id: str) -> dict:
    """The tags a builder puts on what an upload makes."""
    return {"nodepool_provider_name": provider,
            "nodepool_build_id": build_id,
            "nodepool_upload_id": upload_id}
