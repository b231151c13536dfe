"""One fault-suite round: a launcher, a burst of requests, a disruption.

Every round gets a fresh moto (``aws.reset()``: DescribeInstances slows
with every instance moto ever held, and node ids restart per chroot), a
fresh ZooKeeper chroot and a fresh ``nodepool-launcher`` process, so one
round's leftovers can never be mistaken for the next round's.  The round
then plays Zuul:

1. submit a burst of single-node requests;
2. disrupt (the scenario's job: SIGKILL + restart the launcher, stop and
   start ZooKeeper, kill -9 one server of a 3-server ensemble, or nothing
   while cloud faults are injected);
3. wait until every request is fulfilled or failed (bounded; the rest are
   *lost*), and note the seconds from the restart to the last one; then
   look for a node id on two live instances (*duplicated*);
4. take every fulfilled node, use it, release it, and wait for the
   launcher to delete every node;
5. give the launcher a bounded time to remove any live cloud instance
   that has no node (after that they count as *leaked*).

A failure of the harness itself (a launcher that does not start) raises;
a failure of the launcher under test is counted, never raised, so the
table always shows every round.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError

from tools.faults import observers as obs
from tools.zookeeper import ZooKeeperServer
from tools.zuulsim import ZuulSim

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PROVIDER = "faults-aws"
POOLS = "/nodepool/components/pool"


class RestartableZooKeeper(ZooKeeperServer):
    """A ZooKeeperServer whose restart keeps its certificates and data.

    The base class writes a new CA on every ``start()``; a launcher that
    reconnects after a restart must find the server it trusted before."""

    def _write_config(self) -> str:
        path = os.path.join(self.data_dir, "zoo.cfg")
        if self.certs is not None and os.path.exists(path):
            return path
        return super()._write_config()


@dataclass
class RoundResult:
    scenario: str
    index: int
    requests: int
    fulfilled: int = 0
    failed: int = 0
    lost: list[str] = field(default_factory=list)
    leaked: list[dict] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)
    duplicated: dict = field(default_factory=dict)
    nodes_left: list[str] = field(default_factory=list)
    recover_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def bad(self) -> bool:
        # Nodes left (e.g. an 'init' node whose create answered
        # ConnectionLoss but happened) are shown, not failed: the cleanup
        # worker removes them only after 60 s unlocked + its 60 s period,
        # longer than the bounded wait.  Their instances, if any, would
        # show as leaked or duplicated.
        return bool(self.lost or self.leaked or self.twice
                    or self.duplicated)


class Launcher:
    """A ``nodepool-launcher -f`` child process, output appended to a log."""

    def __init__(self, config: str, log_path: str, env: dict[str, str]):
        self.log_path = log_path
        full = {k: v for k, v in os.environ.items()
                if not k.startswith("STATSD_")}
        full.update(env)
        full["PYTHONPATH"] = ROOT
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nodepool.cmd.launcher", "-f",
                 "-c", config, "--no-webapp"], cwd=ROOT, env=full,
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def retrying(fn, timeout: float = 60.0):
    """Call ``fn`` until it stops raising ZooKeeper connection errors."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (KazooException, NoNodeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Round:
    """The shared steps of every scenario's round (see module docstring)."""

    def __init__(self, zk, aws, workdir: str, scenario: str, index: int,
                 requests: int, rate: float = 10.0):
        self.zk, self.aws, self.workdir = zk, aws, workdir
        self.index, self.n, self.rate = index, requests, rate
        self.name = f"{scenario}-{index:02d}"
        self.result = RoundResult(scenario, index, requests)
        self.launchers: list[Launcher] = []
        self.client: KazooClient | None = None

    # -- setup ----------------------------------------------------------------
    def write_config(self) -> str:
        self.aws.reset()
        boot = self.boot = self.aws.bootstrap()
        chroot = f"/faults/{self.name}"
        top = KazooClient(hosts=self.zk.hosts)
        top.start(timeout=15)
        top.ensure_path(chroot)
        top.stop()
        top.close()
        self.chroot = chroot
        members = getattr(self.zk, "servers", None)
        if members is not None:
            # A ZooKeeperEnsemble (plain TCP): every member, one chroot.
            zk_conf = {"zookeeper-servers": [
                {"host": "127.0.0.1", "port": m.port, "chroot": chroot}
                for m in members]}
        else:
            zk_conf = {
                "zookeeper-servers": [{"host": "127.0.0.1",
                                       "port": self.zk.secure_port,
                                       "chroot": chroot}],
                "zookeeper-tls": {"cert": self.zk.certs.client_cert,
                                  "key": self.zk.certs.client_key,
                                  "ca": self.zk.certs.ca}}
        data = {
            **zk_conf,
            # The server's minimum: a SIGKILLed launcher's session (and
            # its locks) goes away quickly.
            "zookeeper-timeout": 4.0,
            "labels": [{"name": "fault"}],
            "providers": [{
                "name": PROVIDER, "driver": "aws",
                "region-name": boot["region"], "rate": self.rate,
                "batch-creates": True, "launch-timeout": 120,
                "cloud-images": [{"name": "img",
                                  "image-id": boot["image_id"],
                                  "username": "ubuntu"}],
                # Two zones serving the same label, as a site spreads
                # over: a zone out of capacity is the other's to cover.
                "pools": [{"name": name, "max-servers": self.n * 2,
                           "subnet-id": subnet,
                           "security-group-id": boot["security_group_id"],
                           "host-key-checking": False,
                           "labels": [{"name": "fault",
                                       "cloud-image": "img",
                                       "instance-type": "t3.micro",
                                       "key-name": boot["key_name"]}]}
                          for name, subnet in zip(
                              ("main", "spare"), boot["subnet_ids"][:2])],
            }],
        }
        path = os.path.join(self.workdir, f"{self.name}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(data, f)
        return path

    def start_launcher(self) -> Launcher:
        proc = Launcher(self.config, os.path.join(
            self.workdir, f"{self.name}.log"), self.aws.env())
        self.launchers.append(proc)
        return proc

    def setup(self) -> None:
        self.config = self.write_config()
        self.client = KazooClient(hosts=self.zk.hosts + self.chroot,
                                  timeout=30.0)
        self.client.start(timeout=15)
        self.watch = obs.NodeWatch(self.client)
        self.zuul = ZuulSim(self.client)
        self.ec2 = self.aws.client("ec2")
        proc = self.start_launcher()
        deadline = time.monotonic() + 60
        while not obs.children(self.client, POOLS):
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"launcher did not start, see "
                                   f"{proc.log_path}")
            time.sleep(0.1)

    def submit(self) -> None:
        self.rids = [self.zuul.submit(["fault"]) for _ in range(self.n)]
        self.t_burst = time.time()

    # -- steps 3-5 --------------------------------------------------------
    def states(self) -> dict[str, dict]:
        futures = {r: self.client.get_async(f"{obs.REQUESTS}/{r}")
                   for r in self.rids}
        out = {}
        for rid, fut in futures.items():
            try:
                out[rid] = json.loads(fut.get(timeout=30)[0])
            except NoNodeError:
                out[rid] = {"state": "vanished"}
        return out

    def wait_done(self, t_restart: float, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            final = retrying(self.states)
            open_ = [r for r, q in final.items()
                     if q.get("state") not in ("fulfilled", "failed")]
            if not open_ or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        res = self.result
        res.fulfilled = sum(q["state"] == "fulfilled" for q in final.values())
        res.failed = sum(q["state"] == "failed" for q in final.values())
        res.lost = [f"{r}:{final[r].get('state')}" for r in open_]
        res.recover_s = max(0.0, time.time() - max(t_restart, self.t_burst))
        res.twice = obs.allocated_twice(self.watch.moves(), final)
        res.duplicated = self.live_duplicates()
        return final

    def live_duplicates(self, settle: float = 10.0) -> dict:
        """Nodes with two live instances once every request is done.

        A launch retry legitimately leaves a node id on two instances, the
        failed attempt's one being terminated; a delete batch may hold that
        terminate a few seconds, so only pairs still both live after
        ``settle`` seconds count.  (A live one left after cleanup is also
        counted as leaked.)"""
        deadline = time.monotonic() + settle
        while True:
            live = [i for i in obs.cloud_instances(self.ec2, PROVIDER)
                    if i["state"] in ("pending", "running")]
            dups = obs.duplicated(live)
            if not dups or time.monotonic() > deadline:
                return dups
            time.sleep(0.5)

    def use_and_release(self, final: dict) -> None:
        for rid, req in final.items():
            if req["state"] != "fulfilled":
                self.zuul.delete_request(rid)
                continue
            try:
                nodes = self.zuul.accept(rid)
            except (AssertionError, TimeoutError) as exc:
                self.result.notes.append(f"accept {rid}: {exc}")
                self.zuul.delete_request(rid)
                continue
            self.zuul.set_in_use(nodes)
            self.zuul.release(nodes)

    def wait_clean(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            nodes = retrying(lambda: obs.children(self.client, obs.NODES))
            insts = obs.cloud_instances(self.ec2, PROVIDER)
            leaks = retrying(lambda: obs.leaked(insts, self.client))
            live = [i for i in insts if i["state"] in obs.LIVE_STATES]
            if (not nodes and not live) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        res = self.result
        res.nodes_left = [f"{n}:{(self.zuul.get_node(n) or {}).get('state')}"
                          for n in nodes]
        res.leaked = leaks
        relaunched = obs.duplicated(insts)
        if relaunched:
            res.notes.append(f"{len(relaunched)} node(s) relaunched "
                             "(two instances over the round)")

    def finish(self, t_restart: float, done_timeout: float,
               clean_timeout: float) -> RoundResult:
        final = self.wait_done(t_restart, done_timeout)
        self.use_and_release(final)
        self.wait_clean(clean_timeout)
        return self.result

    def close(self) -> None:
        for proc in self.launchers:
            proc.stop()
        if self.client is not None:
            self.client.stop()
            self.client.close()
