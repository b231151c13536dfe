"""A kazoo TreeCache that fetches only what the launcher reads.

kazoo's ``TreeCache`` reads the data *and* the children of every znode in
its subtree and keeps a watch on each.  Under ``/nodepool/nodes`` that
includes every lock contender: each lock cycle costs several extra round
trips (data and children of the contender, the lock directory's data).  The
launcher only needs to know *whether* a node's lock directory has
contenders, and request znodes never have children.

``LeanTreeCache(client, path, data_depth, children_depth)`` fetches data
only for znodes at most ``data_depth`` below the root and children only
for those at most ``children_depth`` below it.  Deeper znodes are tracked
by name only: since they carry no watch of their own, a parent's children
listing that no longer names them removes them.

Failure story: as for kazoo's TreeCache (it is one): on reconnection every
known znode is refreshed; events of untracked depths are simply not
fetched.  Only ``TreeNode``'s documented-in-code behaviour is relied on;
the subclass is pinned by tests in ``tests/functional/zk/test_zk_cache.py``.

Threads: as kazoo's TreeCache (2.11), which takes no lock.  Its
background thread (spawned by ``start`` through kazoo's handler) applies
the results of reads, so ``_LeanNode._process_result`` -- the override
that adds and removes children -- runs there; kazoo applies a deletion a
watch notifies on its watch-callback thread, which therefore also
changes the children dicts.  Readers on other threads look at those
dicts without a lock (``TreeCaches.child_data`` copies them in one call,
atomic under the GIL).  Listeners are called on the background thread.
"""

from __future__ import annotations

from kazoo.protocol.paths import join as kazoo_join
from kazoo.recipe.cache import TreeCache, TreeEvent, TreeNode

__all__ = ["LeanTreeCache"]


class _LeanNode(TreeNode):
    __slots__ = ()

    def _refresh(self):
        tree = self._tree
        if self._depth <= tree.data_depth:
            self._refresh_data()
        if self._depth <= tree.children_depth:
            self._refresh_children()

    def _process_result(self, method_name, path, result):
        if method_name != "get_children" or not result.successful():
            return super()._process_result(method_name, path, result)
        children = set(result.get())
        for child in sorted(children - set(self._children)):
            node = _LeanNode(self._tree, kazoo_join(path, child), self)
            self._children[child] = node
            node.on_created()
        # Untracked (watch-less) children only leave through this listing.
        for gone in set(self._children) - children:
            node = self._children[gone]
            if node._depth > self._tree.data_depth:
                node.on_deleted()
        self._tree._outstanding_ops -= 1
        if self._tree._outstanding_ops == 0 and \
                not self._tree._is_initialized:
            self._tree._is_initialized = True
            self._publish_event(TreeEvent.INITIALIZED)


class LeanTreeCache(TreeCache):
    def __init__(self, client, path: str, data_depth: int,
                 children_depth: int):
        super().__init__(client, path)
        self.data_depth = data_depth
        self.children_depth = children_depth
        self._root = _LeanNode.make_root(self, path)

