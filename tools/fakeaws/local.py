"""LocalAWS: the Python handle on a running fake (tests, demo, benchmarks).

By default the fake runs as a CHILD PROCESS (``python -m tools.fakeaws``,
which in turn owns the moto child): the proxy's handler threads then never
compete for the GIL with a busy test or launcher, so injected latencies
and token-bucket refills stay accurate under load.  ``in_process=True``
runs the proxy as a thread of this process instead (one interpreter fewer,
handy in a debugger; timings get noisier when this process is busy).

Every control operation is an HTTP call to the proxy's ``/_fake/``
endpoints, in both modes, so what a test does is exactly what a benchmark
script or ``curl`` can do.  If the child does not print its ready line
within the start timeout it is killed and its stderr log is raised.  The
child watches its stdin: when this process dies, even by kill -9, the
pipe closes and the child stops moto and exits.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

from tools.fakeaws.bootstrap import bootstrap_region

__all__ = ["LocalAWS"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class LocalAWS:
    """moto + the EC2-like proxy, started and stopped as one thing.

    >>> aws = LocalAWS(run_instances_latency=0.2).start()
    >>> ec2 = boto3.client("ec2", endpoint_url=aws.endpoint_url, ...)
    >>> aws.configure(throttle=False); aws.stats()["calls"]
    >>> aws.stop()

    Parameters: ``run_instances_latency`` seconds per RunInstances call;
    ``throttle`` switches the EC2 token buckets; ``quotas`` is
    ``{"ec2": {"L-1216C47A": 64.0}}``; ``workdir`` keeps moto.log and
    proxy.log (a temporary directory, removed on stop, when None);
    ``terminated_ttl``: forget instances terminated that many seconds ago,
    as EC2 does after about an hour (moto keeps them all; see
    ``motochild``).
    ``flags`` are any further run-time flags (see ``config.py``).
    """

    def __init__(self, run_instances_latency: float = 1.5,
                 throttle: bool = True,
                 quotas: dict[str, dict[str, float]] | None = None,
                 workdir: str | None = None, *,
                 flags: dict | None = None, in_process: bool = False,
                 port: int = 0, region: str = "us-east-1",
                 log_requests: bool = False,
                 terminated_ttl: float | None = None):
        self.flags = dict(flags or {})
        self.flags.setdefault("run_instances_latency", run_instances_latency)
        self.flags.setdefault("throttle", throttle)
        if quotas:
            self.flags["quotas"] = quotas
        self.region = region
        self.in_process = in_process
        self._port = port
        self._log_requests = log_requests
        self._terminated_ttl = terminated_ttl
        self._own_workdir = workdir is None
        self.workdir = workdir
        self.endpoint_url = ""
        self.moto_url = ""
        self._process: subprocess.Popen | None = None
        self._threaded = None  # (MotoServer, FakeAWSProxy) in in_process mode

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "LocalAWS":
        if self.endpoint_url:
            raise RuntimeError("LocalAWS already started")
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="fakeaws-")
        os.makedirs(self.workdir, exist_ok=True)
        try:
            if self.in_process:
                self._start_thread()
            else:
                self._start_child(timeout)
        except BaseException:
            self.stop()  # removes a temporary workdir, reaps the child
            raise
        return self

    def _start_child(self, timeout: float) -> None:
        cmd = [sys.executable, "-m", "tools.fakeaws", "--port",
               str(self._port), "--workdir", self.workdir,
               "--config-json", json.dumps(self.flags), "--exit-on-stdin-eof"]
        if self._log_requests:
            cmd.append("--log-requests")
        if self._terminated_ttl is not None:
            cmd += ["--terminated-ttl", str(self._terminated_ttl)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
        log_path = os.path.join(self.workdir, "fakeaws.log")
        with open(log_path, "ab") as log:
            self._process = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, cwd=ROOT, env=env)
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else b""
        if not line:
            self._kill_child()
            self._process.stdin.close()
            self._process.stdout.close()
            self._process = None
            with open(log_path, errors="replace") as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"fakeaws did not start:\n{tail}")
        info = json.loads(line)
        self.endpoint_url = info["endpoint_url"]
        self.moto_url = info["moto_url"]

    def _start_thread(self) -> None:
        from tools.fakeaws.config import Behaviour
        from tools.fakeaws.motoserver import MotoServer
        from tools.fakeaws.proxy import FakeAWSProxy
        moto = MotoServer(os.path.join(self.workdir, "moto.log"),
                          terminated_ttl=self._terminated_ttl).start()
        try:
            proxy = FakeAWSProxy("127.0.0.1", moto.port,
                                 Behaviour(self.flags), moto.reset,
                                 port=self._port,
                                 moto_cpu=moto.cpu_seconds).start()
        except Exception:
            moto.stop()
            raise
        self._threaded = (moto, proxy)
        self.endpoint_url = proxy.endpoint_url
        self.moto_url = moto.url

    def stop(self) -> None:
        if self._threaded is not None:
            moto, proxy = self._threaded
            self._threaded = None
            proxy.stop()
            moto.stop()
        if self._process is not None:
            self._process.stdin.close()  # the child's cue to shut down
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._kill_child()
            self._process.stdin.close()
            self._process.stdout.close()
            self._process = None
        self.endpoint_url = ""
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _kill_child(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> "LocalAWS":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what a launcher process needs --------------------------------------

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 at this fake."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            # Never look for instance-metadata credentials on a test box.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str, region: str | None = None, **kwargs):
        """A boto3 client on the proxy with dummy credentials."""
        import boto3
        return boto3.client(service, endpoint_url=self.endpoint_url,
                            region_name=region or self.region,
                            aws_access_key_id="testing",
                            aws_secret_access_key="testing", **kwargs)

    def bootstrap(self, region: str | None = None) -> dict[str, str]:
        """Image, subnet, security group and key pair to launch with.

        Talks to moto directly, so it neither counts in the stats nor
        spends tokens.  Idempotent; call again after :meth:`reset`.
        """
        return bootstrap_region(self.moto_url, region or self.region)

    # -- run-time control ---------------------------------------------------

    def _call(self, method: str, path: str, doc: object = None) -> dict:
        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.endpoint_url + path, data=data,
                                     method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ValueError(f"fakeaws {method} {path}: {detail}") from None

    def configure(self, **flags) -> dict:
        """Apply run-time flags (see ``config.py``); returns the new config."""
        return self._call("POST", "/_fake/config", flags)

    def restore_config(self) -> dict:
        """Back to the flags this LocalAWS was created with."""
        return self._call("POST", "/_fake/config/reset", {})

    def config(self) -> dict:
        return self._call("GET", "/_fake/config")

    def inject_fault(self, code: str | None = "InsufficientInstanceCapacity",
                     **rule) -> None:
        """Append a fault rule, e.g. ``inject_fault(count=2)`` or
        ``inject_fault("InternalError", action="DescribeInstances",
        probability=0.1, count=None)``."""
        self._call("POST", "/_fake/faults", {"code": code, **rule})

    def clear_faults(self) -> None:
        self._call("DELETE", "/_fake/faults")

    def stats(self) -> dict:
        return self._call("GET", "/_fake/stats")

    def reset_stats(self) -> None:
        self._call("POST", "/_fake/stats/reset", {})

    def refill(self) -> None:
        """Fill every token bucket (the next burst starts fresh)."""
        self._call("POST", "/_fake/refill", {})

    def add_import_task(self, kind: str, tags: dict, *,
                        snapshot_id: str | None = None,
                        image_id: str | None = None, **extra) -> str:
        """A finished ``kind`` ("snapshot"/"image") import task with its
        ``tags`` and result, as EC2 lists it (moto has none, see
        ``imports.py``); returns the task id."""
        doc = {"kind": kind, "tags": tags, "snapshot_id": snapshot_id,
               "image_id": image_id, "region": self.region, **extra}
        return self._call("POST", "/_fake/import-tasks", doc)["id"]

    def import_tasks(self) -> list[dict]:
        return self._call("GET", "/_fake/import-tasks")["tasks"]

    def reset(self) -> None:
        """moto forgets everything; counters cleared; buckets full; seeded
        import tasks dropped.

        The configuration (latency, faults, quotas) is kept."""
        self._call("POST", "/_fake/reset", {})
