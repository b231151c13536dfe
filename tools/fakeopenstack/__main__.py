"""Run the local OpenStack until SIGINT/SIGTERM.

    python -m tools.fakeopenstack --port 5000 --clouds-yaml /tmp/clouds.yaml \\
        --build-time 2 --create-latency 1

Writes a clouds.yaml (cloud ``fake`` unless ``--cloud-name``), prints it and
the base URL, then serves.  Steer it at run time through ``/_fake/config``
and ``/_fake/fail``, observe it through ``/_fake/stats`` (see
:mod:`tools.fakeopenstack.control`).  Exit status 0 after a signal.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading

from tools.fakeopenstack.local import LocalOpenStack


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.fakeopenstack",
                                description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0,
                   help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--clouds-yaml", default=None,
                   help="where to write clouds.yaml (default: a temp file)")
    p.add_argument("--cloud-name", default="fake")
    p.add_argument("--region", default="RegionOne")
    p.add_argument("--build-time", type=float, default=0.0)
    p.add_argument("--create-latency", type=float, default=0.0)
    p.add_argument("--delete-time", type=float, default=0.0)
    p.add_argument("--server-ip", default=None,
                   help="address every server gets, e.g. 127.0.0.1")
    p.add_argument("--max-instances", type=int, default=100)
    p.add_argument("--availability-zone", action="append", default=None,
                   dest="zones", help="repeat for several zones")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cloud = LocalOpenStack(
        args.port, availability_zones=args.zones,
        build_time=args.build_time, create_latency=args.create_latency,
        delete_time=args.delete_time, server_ip=args.server_ip,
        max_instances=args.max_instances)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    cloud.start()
    path = args.clouds_yaml or os.path.join(
        tempfile.mkdtemp(prefix="fakeopenstack-"), "clouds.yaml")
    cloud.write_clouds_yaml(path, args.cloud_name, args.region)
    with open(path) as f:
        sys.stdout.write(f"# fake OpenStack at {cloud.base_url}\n"
                         f"# clouds.yaml written to {path}\n{f.read()}")
    sys.stdout.flush()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        cloud.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
