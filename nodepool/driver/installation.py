"""Whose resource is it: the ``nodepool_installation`` tag (pure logic).

Every resource a launcher creates carries its installation's id (kept in
ZooKeeper, see ``nodepool.zk.installation``) through ``LaunchSpec.metadata``.
Three cases follow for anything a cloud lists:

- it carries *our* id: ours, judged by upstream's leak rule;
- it carries *another* id: another installation's (same account, same
  provider name, another ZooKeeper): never deleted by us -- not by leak
  cleanup, not by crash recovery, not as an unused launch template -- and
  counted as usage we do not manage;
- it carries *no* id: made by upstream Nodepool, by a builder, or by this
  launcher before it tagged installations: upstream's rule, unchanged.

>>> foreign({TAG: "b"}, "a"), foreign({}, "a"), foreign({TAG: "a"}, "a")
(True, False, False)
>>> ours({TAG: "a"}, "a"), ours({}, "a")
(True, False)
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["TAG", "foreign", "ours"]

TAG = "nodepool_installation"


def foreign(metadata: Mapping[str, str], installation: str | None) -> bool:
    """Whether ``metadata`` names an installation other than ours."""
    other = metadata.get(TAG)
    return bool(other) and other != installation


def ours(metadata: Mapping[str, str], installation: str | None) -> bool:
    """Whether ``metadata`` names our installation (an untagged resource
    is not provably ours)."""
    return bool(installation) and metadata.get(TAG) == installation
