"""The launcher: request routing, node launches, background duties.

``delete_now`` is the synchronous cloud delete used by
``nodepool delete --now`` (cli.md §1.2).
"""

from __future__ import annotations

import time

from nodepool.driver import adapter_class


def delete_now(config, provider, node, timeout: float = 300.0,
               poll: float = 0.1) -> None:
    """Delete ``node``'s cloud resources here and now, or raise.

    Drives the provider's delete state machine (unbatched) in the calling
    thread until it completes; a cloud "not found" counts as done.
    """
    if node.external_id is None:
        return
    adapter = adapter_class(provider.driver)(provider)
    adapter.start()
    try:
        machine = adapter.delete_machine(node.external_id, immediate=True)
        deadline = time.monotonic() + timeout
        while not machine.advance():
            if time.monotonic() > deadline:
                raise TimeoutError(f"instance {node.external_id} not deleted "
                                   f"after {timeout}s")
            time.sleep(poll)   # waiting on the cloud, not synchronising
    finally:
        adapter.stop()
