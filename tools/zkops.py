"""Run ``nodepool-launcher`` counting its ZooKeeper operations by type.

    python -m tools.zkops OUT.json -- -f -c nodepool.yaml --no-webapp

Every request kazoo sends (create, get_data, set_data, delete, multi, ...)
is counted in the launcher process; the counts are rewritten to
``OUT.json`` every half second (SIGTERM ends the launcher with ``os._exit``,
so nothing can be written at exit), each dump carrying its wall-clock time.  ``tools.bench_core --count-ops``
uses it to print ZooKeeper operations per request.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time

from kazoo.client import KazooClient


def install(path: str) -> None:
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()
    original = KazooClient._call

    def counting_call(self, request, async_object):
        name = type(request).__name__
        with lock:
            counts[name] += 1
        return original(self, request, async_object)

    KazooClient._call = counting_call

    def dump_forever() -> None:
        while True:
            with lock:
                data = {"time": time.time(), "ops": dict(counts)}
            with open(path + ".tmp", "w") as f:
                json.dump(data, f)
            os.replace(path + ".tmp", path)
            time.sleep(0.5)

    threading.Thread(target=dump_forever, name="zkops-dump",
                     daemon=True).start()


def main() -> int:
    out, sep, *rest = sys.argv[1:]
    if sep != "--":
        raise SystemExit("usage: python -m tools.zkops OUT.json -- ARGS")
    install(out)
    from nodepool.cmd.launcher import main as launcher_main
    return launcher_main(rest)


if __name__ == "__main__":
    sys.exit(main())
