"""Helpers for launcher tests: run our launcher in-process, play Zuul."""

from __future__ import annotations

import json
import logging
import threading
import time

import yaml

from nodepool.driver import fake
from tools.zuulsim import ZuulSim


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.02,
             what: str = "condition"):
    """Poll ``predicate`` until truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        threading.Event().wait(interval)



def fulfil_all(env, rids, timeout: float = 30.0) -> list[str]:
    """The nodes of ``rids``, each request asserted fulfilled."""
    nodes = []
    for rid in rids:
        req = env.zuul.wait_state(rid, {"fulfilled", "failed"},
                                  timeout=timeout)
        assert req["state"] == "fulfilled", req
        nodes += req["nodes"]
    return nodes


def quick_backoff(api) -> None:
    """Shrink a driver API's back-off after a failure: its limiter (and a
    Retry-After) still pace the repeats, but a test need not wait seconds
    per failure on top of that."""
    api.backoff, api.max_backoff = 0.01, 0.05


def errors_logged(caplog) -> list[str]:
    """Errors and tracebacks our loggers wrote during the test."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.name.startswith("nodepool")
            and (r.exc_info or r.levelno >= logging.ERROR)]


def fake_provider(name="fake-provider", pools=None, **extra) -> dict:
    provider = {
        "name": name, "driver": "fake",
        "cloud-images": [{"name": "fake-image", "username": "zuul"}],
        "pools": pools or [{"name": "main", "max-servers": 10,
                            "labels": [{"name": "small",
                                        "cloud-image": "fake-image"}]}],
    }
    provider.update({k.replace('_', '-'): v for k, v in extra.items()})
    return provider


class LauncherEnv:
    """One test's launchers on its ZooKeeper chroot, and Zuul's side.

    A context manager: ``with LauncherEnv(zk, path) as env:`` stops every
    launcher it started on the way out."""

    def __init__(self, zk, tmp_path):
        self.zk_env = zk
        self.tmp_path = tmp_path
        self.config_path = str(tmp_path / "nodepool.yaml")
        self.launchers = []
        self.client = zk.kazoo()
        self.zuul = ZuulSim(self.client)

    def write_config(self, providers, labels=None, **top) -> str:
        if labels is None:
            names = set()
            for p in providers:
                for pool in p.get("pools", []):
                    for label in pool.get("labels", []):
                        names.add(label["name"])
                    for node in pool.get("nodes", []):
                        lbls = node["labels"]
                        names |= set(lbls.split() if isinstance(lbls, str)
                                     else lbls)
            labels = [{"name": n} for n in sorted(names)]
        data = {**self.zk_env.config(tls=True), "labels": labels,
                "providers": providers, **top}
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump(data, f)
        import os
        os.replace(tmp, self.config_path)
        return self.config_path

    def start_launcher(self, **kw):
        from nodepool.launcher.launcher import Launcher
        launcher = Launcher(self.config_path, deleted_interval=kw.pop(
            "deleted_interval", 0.5), cleanup_interval=kw.pop(
            "cleanup_interval", 60), **kw)
        launcher.start()
        self.launchers.append(launcher)
        wait_for(launcher.ready.is_set, what="launcher ready")
        return launcher

    def stop(self):
        for launcher in self.launchers:
            try:
                launcher.stop()
            except Exception:
                pass
        self.client.stop()
        self.client.close()

    def __enter__(self) -> "LauncherEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def raw_node(client, state: str, allocated_to: str | None = None,
             **extra) -> str:
    """Write a node record of ``fake-provider`` as a launcher that died
    left it (no lock, a launcher nobody runs); returns its id."""
    now = time.time()
    data = {"state": state, "state_time": now, "created_time": now,
            "provider": "fake-provider", "pool": "main", "type": ["small"],
            "allocated_to": allocated_to, "launcher": "crashed-launcher"}
    data.update(extra)
    path = client.create("/nodepool/nodes/", json.dumps(data).encode(),
                         sequence=True, makepath=True)
    return path.rsplit("/", 1)[1]

