"""Tagger: per-node tags for batch-created instances, in the background.

After a batched RunInstances every instance carries the shared tags, the
batch mapping and the batch's anchor as ``nodepool_node_id``
(``batchtags``), which already tells our leak cleanup and
``list_instances`` its node, and lets upstream Nodepool's leak rule reap
it once the anchor's node is gone.  What is left -- the instance's own
``nodepool_node_id``, ``Name`` and the node's rendered ``dynamic-tags`` --
is one CreateTags call per instance.  Those calls are mutating, so they go
through the provider's rate limiter; one thread sends them one at a time,
as background calls: a tag call takes a slot only while no create or
delete waits for one, so a burst of tags never slows a burst of creates
(under a long create burst the tags follow when it ends).  Nodes do not
wait for their tags to become READY.  Calls go in the order they were added, and the creator adds a
batch's siblings before its anchor: a sibling is the one whose
``nodepool_node_id`` is wrong for upstream until it is retagged (see the
residual windows in ``batchtags``); the anchor's only lacks ``Name`` and
dynamic tags.

Failure story: EC2 may not know a brand-new instance id for a moment
(InvalidInstanceID.NotFound): the item is retried after a short delay, up
to ``attempts`` times, then dropped with a warning (ours still finds the
instance's node through its batch tags; for upstream it keeps the
anchor's id).  ``stop()`` ends the thread; tags still queued are dropped
with a log line.

Threads: one, ``<provider>-tagger``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable, Mapping

from nodepool.driver import errors

__all__ = ["Tagger"]

log = logging.getLogger(__name__)


class Tagger:
    """``create_tags(instance_id, tags)`` performs one rate-limited call."""

    def __init__(self, name: str,
                 create_tags: Callable[[str, Mapping[str, str]], None],
                 attempts: int = 5, retry_delay: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.tagged = 0
        self.failed = 0
        self._create_tags = create_tags
        self._clock = clock
        self._cond = threading.Condition()
        # (due, seq, instance id, tags, attempt)
        self._queue: list[tuple[float, int, str, dict, int]] = []
        self._seq = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._stopping:
                raise RuntimeError(f"tagger {self.name} already started")
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-tagger", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            dropped = len(self._queue)
            self._queue.clear()
            self._cond.notify()
            thread = self._thread
        if dropped:
            log.info("Tagger %s stopped with %d instances untagged "
                     "(their batch tags still name their nodes for us; "
                     "upstream sees their batch's anchor)",
                     self.name, dropped)
        if thread is not None:
            thread.join(timeout=10)

    def add(self, instance_id: str, tags: Mapping[str, str]) -> None:
        self._push(self._clock(), instance_id, dict(tags), 1)

    def _push(self, due: float, instance_id: str, tags: dict,
              attempt: int) -> None:
        with self._cond:
            if self._stopping:
                return
            heapq.heappush(self._queue,
                           (due, next(self._seq), instance_id, tags, attempt))
            self._cond.notify()

    def _next(self):
        with self._cond:
            while not self._stopping:
                if self._queue:
                    wait = self._queue[0][0] - self._clock()
                    if wait <= 0:
                        return heapq.heappop(self._queue)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
        return None

    def _run(self) -> None:
        while (item := self._next()) is not None:
            _, _, instance_id, tags, attempt = item
            try:
                self._create_tags(instance_id, tags)
            except (errors.NotFoundError, *errors.WAIT_FOR_ACCESS) as e:
                if attempt >= self.attempts:
                    self.failed += 1
                    log.warning("Tagger %s: giving up on %s: %s",
                                self.name, instance_id, e)
                else:
                    self._push(self._clock() + self.retry_delay * attempt,
                               instance_id, tags, attempt + 1)
            except Exception as e:
                self.failed += 1
                log.warning("Tagger %s: tagging %s failed: %s",
                            self.name, instance_id, e)
            else:
                self.tagged += 1

    def stats(self) -> dict:
        return {"tagged": self.tagged, "failed": self.failed,
                "pending": self.pending}
