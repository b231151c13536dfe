"""The local demo: ZooKeeper, a local AWS and a static host, served by our launcher.

Runs everything on 127.0.0.1 and plays Zuul against it:

1. starts a ZooKeeper with mutual TLS, the local AWS (moto behind the
   EC2-like proxy: RunInstances latency, token buckets) and an sshd;
2. starts ``nodepool-launcher`` with ``etc/nodepool-demo.yaml``;
3. submits node requests as Zuul does, shows progress until they are
   fulfilled and prints ``nodepool list``;
4. marks the nodes used, waits until the launcher has deleted them (and
   terminated their instances) and prints ``nodepool list`` again;
5. stops everything it started — or, with ``--keep-running``, leaves it
   running and says how to use and stop it.

    python -m tools.demo [--keep-running] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from kazoo.client import KazooClient

from tools.fakeaws import LocalAWS
from tools.sshd import SSHServer
from tools.zookeeper import ZooKeeperServer, free_port
from tools.zuulsim import ZuulSim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "etc", "nodepool-demo.yaml")
BIN = os.path.dirname(sys.executable)


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


class Demo:
    def __init__(self, workdir: str, latency: float):
        self.workdir = workdir
        self.latency = latency
        self.zk = self.aws = self.sshd = self.launcher = None
        self.client = None
        self.env = dict(os.environ)

    # -- services -----------------------------------------------------------
    def start_services(self) -> None:
        say("starting ZooKeeper (mutual TLS) ...")
        self.zk = ZooKeeperServer(os.path.join(self.workdir, "zookeeper"),
                                  tls=True).start()
        say(f"  ZooKeeper on {self.zk.tls_hosts}")
        say(f"starting the local AWS (RunInstances latency "
            f"{self.latency}s, EC2 token buckets) ...")
        self.aws = LocalAWS(run_instances_latency=self.latency,
                            workdir=os.path.join(self.workdir, "aws")).start()
        boot = self.aws.bootstrap()
        say(f"  EC2 endpoint {self.aws.endpoint_url}, AMI {boot['image_id']}")
        say("starting sshd for the static pool ...")
        self.sshd = SSHServer(os.path.join(self.workdir, "sshd")).start()
        say(f"  sshd on 127.0.0.1:{self.sshd.port}")
        certs = self.zk.certs
        self.env.update(self.aws.env())
        self.env.update({
            "NODEPOOL_DEMO_ZK_PORT": str(self.zk.secure_port),
            "NODEPOOL_DEMO_ZK_CERT": certs.client_cert,
            "NODEPOOL_DEMO_ZK_KEY": certs.client_key,
            "NODEPOOL_DEMO_ZK_CA": certs.ca,
            "NODEPOOL_DEMO_WEB_PORT": str(free_port()),
            "NODEPOOL_DEMO_AMI": boot["image_id"],
            "NODEPOOL_DEMO_SUBNET": boot["subnet_id"],
            "NODEPOOL_DEMO_SECURITY_GROUP": boot["security_group_id"],
            "NODEPOOL_DEMO_KEY_NAME": boot["key_name"],
            "NODEPOOL_DEMO_SSH_PORT": str(self.sshd.port),
        })
        self.client = KazooClient(
            hosts=self.zk.tls_hosts, use_ssl=True, verify_certs=True,
            ca=certs.ca, certfile=certs.client_cert,
            keyfile=certs.client_key)
        self.client.start(timeout=15)

    def start_launcher(self) -> None:
        log = os.path.join(self.workdir, "launcher.log")
        say(f"starting nodepool-launcher -c {os.path.relpath(CONFIG)} "
            f"(log: {log}) ...")
        self.launcher = subprocess.Popen(
            [os.path.join(BIN, "nodepool-launcher"), "-f", "-c", CONFIG],
            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while len(self._pools()) < 2:
            if self.launcher.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the launcher did not start; see {log}")
            time.sleep(0.2)
        say(f"  launcher serving pools: {', '.join(sorted(self._pools()))}")

    def _pools(self) -> list[str]:
        path = "/nodepool/components/pool"
        if not self.client.exists(path):
            return []
        names = []
        for child in self.client.get_children(path):
            try:
                data, _ = self.client.get(f"{path}/{child}")
            except Exception:
                continue
            info = json.loads(data)
            names.append(f"{info['provider_name']}/{info['name']}")
        return names

    def nodepool(self, *args: str) -> str:
        out = subprocess.run(
            [os.path.join(BIN, "nodepool"), "-c", CONFIG, *args],
            env=self.env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise SystemExit(f"nodepool {' '.join(args)} failed: "
                             f"{out.stderr.strip()}")
        return out.stdout

    # -- playing Zuul ---------------------------------------------------------
    def run_requests(self) -> None:
        zuul = ZuulSim(self.client)
        wanted = [["ubuntu-small"], ["ubuntu-small", "ubuntu-large"],
                  ["ubuntu-large"], ["static-host"]]
        say(f"submitting {len(wanted)} node requests as Zuul would ...")
        start = time.monotonic()
        ids = [zuul.submit(labels, requestor="demo-zuul") for labels in wanted]
        last = None
        while True:
            states = {rid: (zuul.get_request(rid) or {}).get("state")
                      for rid in ids}
            summary = ", ".join(f"{rid}: {s}" for rid, s in states.items())
            if summary != last:
                say(f"  {time.monotonic() - start:5.1f}s  {summary}")
                last = summary
            if all(s in ("fulfilled", "failed") for s in states.values()):
                break
            if time.monotonic() - start > 180:
                raise SystemExit("requests not fulfilled within 180 s")
            time.sleep(0.25)
        if any(s == "failed" for s in states.values()):
            raise SystemExit("a request failed; see the launcher log")
        say("all requests fulfilled; `nodepool list`:")
        print(self.nodepool("list"), flush=True)
        nodes = []
        for rid in ids:
            nodes += zuul.accept(rid)
        zuul.set_in_use(nodes)
        say(f"jobs run on {len(nodes)} nodes ... done; marking them used")
        zuul.release(nodes)
        start = time.monotonic()
        for node_id in nodes:
            zuul.wait_node_gone(node_id, timeout=120)
        say(f"the launcher deleted the used nodes in "
            f"{time.monotonic() - start:.1f}s (static slots come back READY;"
            f" min-ready keeps one ubuntu-small spare); `nodepool list`:")
        self._wait_static_slots(zuul, 2)
        print(self.nodepool("list"), flush=True)
        calls = self.aws.stats().get("calls", {})
        say(f"EC2 calls: RunInstances {calls.get('RunInstances', 0)}, "
            f"TerminateInstances {calls.get('TerminateInstances', 0)}, "
            f"DescribeInstances {calls.get('DescribeInstances', 0)}")

    def _wait_static_slots(self, zuul: ZuulSim, count: int,
                           timeout: float = 30.0) -> None:
        """Until the static host's used slots are READY again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [n for n in zuul.nodes().values()
                     if n.get("provider") == "local-static"
                     and n.get("state") == "ready"]
            if len(ready) >= count:
                return
            time.sleep(0.2)   # polling ZooKeeper, bounded by the deadline
        say("  (the static slots are not READY yet)")

    def write_env_file(self) -> str:
        path = os.path.join(self.workdir, "env.sh")
        with open(path, "w") as f:
            for key in sorted(self.env):
                if key.startswith(("NODEPOOL_DEMO_", "AWS_")):
                    f.write(f"export {key}='{self.env[key]}'\n")
        return path

    def stop(self) -> None:
        if self.launcher is not None and self.launcher.poll() is None:
            self.launcher.send_signal(signal.SIGINT)
            try:
                self.launcher.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
        if self.client is not None:
            self.client.stop()
        for service in (self.sshd, self.aws, self.zk):
            if service is not None:
                try:
                    service.stop()
                except Exception as e:
                    say(f"  could not stop {service}: {e}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keep-running", action="store_true",
                   help="leave everything running and say how to stop it")
    p.add_argument("--workdir", help="where services keep their data and "
                   "logs (default: a new temporary directory)")
    p.add_argument("--latency", type=float, default=1.5,
                   help="RunInstances latency of the local AWS (seconds)")
    args = p.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="nodepool-demo-")
    os.makedirs(workdir, exist_ok=True)
    demo = Demo(workdir, args.latency)
    try:
        demo.start_services()
        demo.start_launcher()
        demo.run_requests()
        if args.keep_running:
            env_file = demo.write_env_file()
            say("everything keeps running. Try:")
            say(f"  source {env_file}")
            say(f"  .venv/bin/nodepool -c {os.path.relpath(CONFIG)} list")
            say(f"stop it all with: kill -INT {os.getpid()}")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        say("demo finished")
        return 0
    finally:
        say("stopping everything the demo started ...")
        demo.stop()
        if not args.workdir and not args.keep_running:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
