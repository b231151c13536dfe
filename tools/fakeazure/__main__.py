"""Run LocalAzure until SIGINT/SIGTERM.

    python -m tools.fakeazure --port 8443 --workdir /tmp/az \
        --set vm_create_latency=2 --set quota_limits='{"cores": 40}'

On start it writes ``<workdir>/auth.json`` (the service-principal file for a
provider's ``auth-path``) and prints one JSON line with ``base_url``,
``ca_path``, ``auth_path`` and ``subscription_id``; the TLS CA is under
``<workdir>/tls``.  Clients must trust that CA (``REQUESTS_CA_BUNDLE``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .server import LocalAzure


def _setting(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fakeazure")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--location", action="append", dest="locations",
                        help="region to offer (repeatable)")
    parser.add_argument("--set", action="append", type=_setting, default=[],
                        metavar="NAME=VALUE",
                        help="behaviour knob, value parsed as JSON")
    args = parser.parse_args(argv)
    kwargs = dict(args.set)
    if args.locations:
        kwargs["locations"] = tuple(args.locations)
    azure = LocalAzure(os.path.abspath(args.workdir), port=args.port,
                       **kwargs)
    azure.start()
    auth_path = azure.write_auth_file(os.path.join(azure.workdir,
                                                   "auth.json"))
    print(json.dumps({"base_url": azure.base_url, "ca_path": azure.ca_path,
                      "auth_path": auth_path,
                      "subscription_id": azure.subscription_id}), flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    azure.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
