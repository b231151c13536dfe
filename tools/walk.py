"""Walk one request through a running launcher and print the path it took.

    python -m tools.walk [--workdir DIR] [--json]

Starts a ZooKeeper server and ``nodepool-launcher`` with the zero-latency
fake adapter (as ``tools.bench_core`` does), warms both up with a few
requests, then records, inside the launcher process, every call of a
function of the ``nodepool`` package and the thread it ran on, in windows
of the same length: one **idle** window (nothing asked; what the daemon's
loops do anyway), then ``ROUNDS`` times

* **claim to READY**: one single-node request, from its creation until it
  is ``fulfilled``;
* **idle**: the request fulfilled and its node READY, nothing under way;
* **used to gone**: its node set ``used`` and unlocked, until the node's
  znode is deleted;
* **idle**: the node gone.

A function counts for a walk when it ran in every round's window of that
walk and in no idle window (on the same kind of thread: a thread's name
without its number).  So what the daemon's loops do anyway -- in the
state before a walk and in the one it leaves behind, such as the periodic
workers looking at the fulfilled request or the new node -- is left out,
and so is what a periodic worker happened to do in one round's window
but not in the others; what every request or node caused on its way is
kept.  For each walk it prints the threads in the order the
work reached them, the modules each ran, and the totals: modules,
functions, threads (a hand-off is a thread after the first).  The
architecture page's walk is checked against this output.

The launcher is profiled with ``threading.setprofile``: slow, so the
windows are long enough for a few loop ticks; nothing here is a timing
figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

__all__ = ["main"]

#: the probe's switches (the launcher itself handles SIGUSR1/2)
START = signal.SIGRTMIN + 3
STOP = signal.SIGRTMIN + 4

#: how long each recording window lasts at least (a few loop ticks)
WINDOW = 3.0
#: how long a window stays open at least after its walk ended
TAIL = 1.0
#: walks recorded of each kind: a function counts if every one ran it
ROUNDS = 3


# -- the probe, inside the launcher process ---------------------------------
def _thread_kind(name: str) -> str:
    return re.sub(r"[-_ ]?\d+$", "", name) or name


def install_probe(out: str) -> None:
    import nodepool
    root = os.path.dirname(os.path.abspath(nodepool.__file__)) + os.sep
    seen: dict = {}
    state = {"on": False, "t0": 0.0}
    lock = threading.Lock()

    def profile(frame, event, arg):
        if event != "call" or not state["on"]:
            return
        path = frame.f_code.co_filename
        if not path.startswith(root):
            return
        module = "nodepool." + path[len(root):-3].replace(os.sep, ".")
        key = (_thread_kind(threading.current_thread().name), module,
               frame.f_code.co_qualname)
        if key not in seen:
            with lock:
                seen.setdefault(key, time.monotonic() - state["t0"])

    def start(signum, frame):
        with lock:
            seen.clear()
        state["t0"] = time.monotonic()
        state["on"] = True
        # The handler runs on the main thread when it next gets the GIL,
        # which on a loaded machine can be after the walk has begun: the
        # harness waits for this mark before it starts the walk.
        with open(out + ".on", "w"):
            pass

    def stop(signum, frame):
        state["on"] = False
        with lock:
            rows = [[*key, t] for key, t in seen.items()]
        with open(out + ".tmp", "w") as f:
            json.dump(rows, f)
        os.replace(out + ".tmp", out)

    signal.signal(START, start)
    signal.signal(STOP, stop)
    threading.setprofile(profile)
    sys.setprofile(profile)


def probe_main(argv: list[str]) -> int:
    out, sep, *rest = argv
    if sep != "--":
        raise SystemExit("usage: python -m tools.walk --probe OUT -- ARGS")
    install_probe(out)
    from nodepool.cmd.launcher import main as launcher_main
    return launcher_main(rest)


# -- the harness -------------------------------------------------------------
def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Harness:
    def __init__(self, client, launcher, out: str):
        self.client = client
        self.launcher = launcher
        self.out = out

    def request(self) -> tuple[str, list[str]]:
        path = self.client.create(
            "/nodepool/requests/100-", json.dumps({
                "state": "requested", "node_types": ["walk"],
                "requestor": "walk", "declined_by": [], "nodes": [],
                "reuse": False, "state_time": time.time(),
                "created_time": time.time()}).encode(),
            sequence=True, makepath=True)
        box = {}

        def fulfilled():
            data = json.loads(self.client.get(path)[0])
            box.update(data)
            return data["state"] in ("fulfilled", "failed")
        _wait(fulfilled, 60, f"{path} fulfilled")
        if box["state"] != "fulfilled":
            raise RuntimeError(f"{path} failed")
        return path, box["nodes"]

    def give_back(self, path: str, nodes: list[str]) -> None:
        self.client.delete(path)
        for node_id in nodes:
            znode = f"/nodepool/nodes/{node_id}"
            data = json.loads(self.client.get(znode)[0])
            data["state"] = "used"
            self.client.set(znode, json.dumps(data).encode())
        for node_id in nodes:
            _wait(lambda: not self.client.exists(
                f"/nodepool/nodes/{node_id}"), 60, f"node {node_id} gone")

    def record(self, action) -> list:
        for stale in (self.out, self.out + ".on"):
            if os.path.exists(stale):
                os.unlink(stale)
        self.launcher.send_signal(START)
        _wait(lambda: os.path.exists(self.out + ".on"), 10,
              "the probe to start recording")
        t0 = time.monotonic()
        result = action()
        # A step that saw the end (the node's znode gone, say) finishes
        # after it: the window stays open a TAIL at least, so that what it
        # does then is not left to the next (idle) window.
        remaining = max(TAIL, WINDOW - (time.monotonic() - t0))
        time.sleep(remaining)           # the window, not a synchronisation
        self.launcher.send_signal(STOP)
        _wait(lambda: os.path.exists(self.out), 10, "the probe's dump")
        with open(self.out) as f:
            return result, json.load(f)


def walk_of(rounds: list, idle: list) -> dict:
    """The walk that every window of ``rounds`` recorded, without what
    ran in any window of ``idle``; in the order of the first round.  A
    round that recorded nothing would empty the walk: it is an error."""
    empty = [i for i, rows in enumerate(rounds) if not rows]
    if empty:
        raise ValueError(f"round(s) {empty} recorded no call: the probe "
                         f"missed the window")
    idle_keys = {(t, m, q) for window in idle for t, m, q, _ in window}
    common = set.intersection(*({tuple(r[:3]) for r in rows}
                                for rows in rounds))
    steps = sorted((r for r in rounds[0] if tuple(r[:3]) in common
                    and tuple(r[:3]) not in idle_keys),
                   key=lambda r: r[3])
    threads: dict[str, dict] = {}
    for thread, module, qualname, _ in steps:
        entry = threads.setdefault(thread, {"modules": [], "functions": 0,
                                            "calls": []})
        entry["functions"] += 1
        entry["calls"].append(f"{module.removeprefix('nodepool.')}:"
                              f"{qualname}")
        if module not in entry["modules"]:
            entry["modules"].append(module)
    modules = {m for _, m, _, _ in steps}
    return {"threads": threads, "modules": sorted(modules),
            "functions": len(steps),
            "handoffs": max(0, len(threads) - 1)}


def print_walk(title: str, walk: dict) -> None:
    print(f"\n{title}: {len(walk['modules'])} modules, "
          f"{walk['functions']} functions, {len(walk['threads'])} threads "
          f"({walk['handoffs']} hand-offs)")
    for thread, entry in walk["threads"].items():
        mods = ", ".join(m.removeprefix("nodepool.")
                         for m in entry["modules"])
        print(f"  {thread:<28} {entry['functions']:>3} fn  {mods}")


def write_config(path: str, zk) -> None:
    import yaml
    with open(path, "w") as f:
        yaml.safe_dump({
            "zookeeper-servers": [{"host": "127.0.0.1", "port": zk.port}],
            "labels": [{"name": "walk"}],
            "providers": [{
                "name": "walk", "driver": "fake",
                "cloud-images": [{"name": "img", "username": "zuul"}],
                "pools": [{"name": "main", "max-servers": 10,
                           "labels": [{"name": "walk",
                                       "cloud-image": "img"}]}]}]}, f)


def run(workdir: str) -> dict:
    from kazoo.client import KazooClient
    from tools.zookeeper import ZooKeeperServer
    zk = ZooKeeperServer(os.path.join(workdir, "zk")).start()
    launcher = client = None
    try:
        cfg = os.path.join(workdir, "nodepool.yaml")
        write_config(cfg, zk)
        out = os.path.join(workdir, "walk.json")
        log = open(os.path.join(workdir, "launcher.log"), "w")
        launcher = subprocess.Popen(
            [sys.executable, "-m", "tools.walk", "--probe", out, "--",
             "-f", "-c", cfg, "--no-webapp"],
            stdout=log, stderr=subprocess.STDOUT)
        client = KazooClient(hosts=zk.hosts)
        client.start(timeout=15)
        _wait(lambda: client.exists("/nodepool/components/pool")
              and client.get_children("/nodepool/components/pool"),
              60, "the launcher's pool component")
        harness = Harness(client, launcher, out)
        for _ in range(3):                       # warm-up
            harness.give_back(*harness.request())
        idle = [harness.record(lambda: None)[1]]
        claims, useds = [], []
        for _ in range(ROUNDS):
            (path, nodes), claim = harness.record(harness.request)
            claims.append(claim)
            idle.append(harness.record(lambda: None)[1])
            useds.append(harness.record(
                lambda: harness.give_back(path, nodes))[1])
            idle.append(harness.record(lambda: None)[1])
        return {"claim_to_ready": walk_of(claims, idle),
                "used_to_gone": walk_of(useds, idle)}
    finally:
        if launcher is not None:
            launcher.terminate()
            launcher.wait(timeout=30)
        if client is not None:
            client.stop()
            client.close()
        zk.stop()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:
        return probe_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", help="keep the launcher's log here")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.workdir or tmp)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_walk("claim to READY", result["claim_to_ready"])
        print_walk("used to gone", result["used_to_gone"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
