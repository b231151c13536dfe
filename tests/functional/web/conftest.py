"""Fixtures for web app tests: a launcher on the fake driver with its web
app on a free loopback port, and headless Chromium.

``site`` (module scope) is one running launcher with nodes, requests and
image uploads that the read-only endpoint tests share; tests that change
what the launcher does (bursts, pausing) use ``env`` + ``webapp`` of their
own.  ``chromium`` installs the Debian package when it is missing (CI sets
``NODEPOOL_EXTRA_APT=chromium`` so it is normally there already): the
status page test must run, never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from nodepool.driver import fake
from nodepool.web import WebApp
from tests.functional.launcher.helpers import LauncherEnv, fake_provider
from tests.functional.web.browser import chromium_path
from tests.functional.web.helpers import ModuleZK, write_upload

#: planted in the config; must never appear in any web output
SECRET = "s3cr3t-Pa55w0rd-do-not-show"


@pytest.fixture
def webapp():
    """``webapp(launcher, **kw)`` starts a WebApp on a free port."""
    apps: list[WebApp] = []

    def start(launcher, **kw) -> WebApp:
        app = WebApp(launcher, port=0, listen_address="127.0.0.1", **kw)
        app.start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@dataclass
class Site:
    env: LauncherEnv
    launcher: object
    app: WebApp
    url: str
    request_id: str
    nodes: list[str]


def site_pools() -> list[dict]:
    return [{"name": "main", "max-servers": 10,
             "node-attributes": {"api-password": SECRET},
             "labels": [{"name": "small", "cloud-image": "fake-image"},
                        {"name": "large", "cloud-image": "fake-image",
                         "cores": 4}]}]


@pytest.fixture(scope="module")
def site(zookeeper_server, tmp_path_factory):
    fake.CLOUDS.clear()
    zk = ModuleZK(zookeeper_server)
    env = LauncherEnv(zk, tmp_path_factory.mktemp("web-site"))
    app = None
    try:
        env.write_config([fake_provider(pools=site_pools(), rate=100)],
                         labels=[{"name": "small"}, {"name": "large"},
                                 {"name": "nowhere"}])
        launcher = env.start_launcher()
        app = WebApp(launcher, port=0, listen_address="127.0.0.1")
        app.start()
        rid = env.zuul.submit(["small", "large"], tenant="tenant-a")
        request = env.zuul.wait_state(rid, {"fulfilled", "failed"})
        assert request["state"] == "fulfilled", request
        write_upload(env.client, "ubuntu", "0000000001", "fake-provider",
                     "0000000001")
        write_upload(env.client, "ubuntu", "0000000002", "fake-provider",
                     "0000000001", state="uploading")
        yield Site(env, launcher, app, app.url, rid, request["nodes"])
    finally:
        if app is not None:
            app.stop()
        env.stop()
        zk.close()
        fake.CLOUDS.clear()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary, installed with apt-get when missing."""
    path = chromium_path()
    if path is None:
        apt = shutil.which("apt-get")
        assert apt is not None, "chromium missing and no apt-get to install it"
        prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(prefix + [apt, "install", "-y", "-qq", "chromium"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        path = chromium_path()
    assert path is not None, "chromium could not be installed"
    return path
