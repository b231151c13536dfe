"""``python -m tools.fakeaws``: moto plus the latency/throttle proxy.

Runs until SIGINT or SIGTERM (or, with ``--exit-on-stdin-eof``, until its
standard input closes: :class:`LocalAWS` uses that so the fake dies with
the test process even after a kill -9).  On start it prints ONE line of
JSON to stdout and flushes it::

    {"endpoint_url": "http://127.0.0.1:PORT", "moto_url": "...", "pid": N}

Everything else (errors, ``--log-requests``) goes to stderr or the workdir.

Examples::

    python -m tools.fakeaws --port 5000 --latency 1.5
    python -m tools.fakeaws --no-throttle --quota ec2/L-1216C47A=64 \
        --enforce-quotas
    python -m tools.fakeaws --config-json '{"latency": {"*": 0.05}}'
    curl -s localhost:5000/_fake/stats
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from tools.fakeaws.config import Behaviour
from tools.fakeaws.motoserver import MotoServer
from tools.fakeaws.proxy import FakeAWSProxy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.fakeaws",
        description="Local AWS for tests: moto behind an EC2-like proxy "
                    "(latency, throttling, Service Quotas, faults).")
    parser.add_argument("--port", type=int, default=0,
                        help="proxy port on 127.0.0.1 (0 = free port)")
    parser.add_argument("--moto-port", type=int, default=0,
                        help="moto port on 127.0.0.1 (0 = free port)")
    parser.add_argument("--latency", type=float, default=None,
                        help="seconds added to each RunInstances "
                             "(default 1.5)")
    parser.add_argument("--no-throttle", action="store_true",
                        help="switch every token bucket off")
    parser.add_argument("--enforce-quotas", action="store_true",
                        help="refuse/cut RunInstances beyond the vCPU "
                             "quotas (VcpuLimitExceeded)")
    parser.add_argument("--quota", action="append", default=[],
                        metavar="SERVICE/CODE=VALUE",
                        help="a Service Quotas value, e.g. "
                             "ec2/L-1216C47A=64 (repeatable)")
    parser.add_argument("--config-json", default=None,
                        help="JSON object of run-time flags "
                             "(as POST /_fake/config)")
    parser.add_argument("--workdir", default=None,
                        help="directory for moto.log / proxy.log")
    parser.add_argument("--log-requests", action="store_true",
                        help="log every proxied request (to proxy.log in "
                             "--workdir, else stderr)")
    parser.add_argument("--terminated-ttl", type=float, default=None,
                        help="forget instances terminated this many "
                             "seconds ago, as EC2 does after about an hour "
                             "(default: moto keeps them all)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="stop when standard input closes")
    return parser.parse_args(argv)


def flags_from_args(args: argparse.Namespace) -> dict:
    flags: dict = json.loads(args.config_json) if args.config_json else {}
    if args.latency is not None:
        flags["run_instances_latency"] = args.latency
    if args.no_throttle:
        flags["throttle"] = False
    if args.enforce_quotas:
        flags["enforce_quotas"] = True
    for item in args.quota:
        name, _, value = item.partition("=")
        service, _, code = name.partition("/")
        if not (service and code and value):
            raise SystemExit(f"--quota wants SERVICE/CODE=VALUE, got {item}")
        flags.setdefault("quotas", {}).setdefault(service, {})[code] = \
            float(value)
    return flags


def _request_logger(args: argparse.Namespace):
    if not args.log_requests:
        return None
    if args.workdir:
        stream = open(os.path.join(args.workdir, "proxy.log"), "a",
                      buffering=1)
    else:
        stream = sys.stderr
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            stream.write(line + "\n")
    return log


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    behaviour = Behaviour(flags_from_args(args))
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    moto_log = (os.path.join(args.workdir, "moto.log") if args.workdir
                else os.devnull)
    moto = MotoServer(moto_log, port=args.moto_port or None,
                      terminated_ttl=args.terminated_ttl).start()
    try:
        proxy = FakeAWSProxy("127.0.0.1", moto.port, behaviour, moto.reset,
                             port=args.port, log=_request_logger(args),
                             moto_cpu=moto.cpu_seconds)
        proxy.start()
        print(json.dumps({"endpoint_url": proxy.endpoint_url,
                          "moto_url": moto.url, "pid": os.getpid()}),
              flush=True)
        print(f"fakeaws: AWS_ENDPOINT_URL={proxy.endpoint_url} "
              f"(moto at {moto.url}); stop with Ctrl-C", file=sys.stderr,
              flush=True)
        if args.exit_on_stdin_eof:
            threading.Thread(target=lambda: (sys.stdin.read(), done.set()),
                             name="fakeaws-stdin", daemon=True).start()
        while not done.wait(1.0):
            pass
        proxy.stop()
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
