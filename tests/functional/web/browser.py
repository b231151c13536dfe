"""Headless Chromium driven over the DevTools protocol on a pipe.

``chromium --remote-debugging-pipe`` reads commands on fd 3 and writes
replies and events on fd 4, each a JSON message ended by a NUL byte.  That
is all a test needs to load a page once, watch it update itself, evaluate
expressions in it and take a screenshot: no websocket client, no
Playwright, no downloaded browser.

    with Browser(tmp_path) as browser:
        browser.open("http://127.0.0.1:PORT/")
        browser.wait_for("document.title === 'x'")
        browser.screenshot("artifacts/page.png")
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-extensions",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--remote-debugging-pipe",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _above_4(fd: int) -> int:
    # "3<&4 4>&3" would lose a pipe end: keep ours off fds 3 and 4.
    if fd > 4:
        return fd
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 5)
    os.close(fd)
    return high


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, profile_dir: str, width: int = 1280,
                 height: int = 900, timeout: float = 30.0):
        self.profile_dir = str(profile_dir)
        self.width, self.height = width, height
        self.timeout = timeout
        self._ids = 0
        self._buffer = b""
        self.proc: subprocess.Popen | None = None
        self.session: str | None = None
        self.console: list[str] = []

    # -- process -------------------------------------------------------------
    def start(self) -> "Browser":
        path = chromium_path()
        if path is None:
            raise BrowserError("chromium is not installed")
        to_child_r, self._to_child = map(_above_4, os.pipe())
        self._from_child, from_child_w = map(_above_4, os.pipe())
        # bash puts our pipe ends on fds 3 and 4, where chromium expects
        # them, then becomes chromium (dash cannot name fds above 9).
        script = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}'
        self.proc = subprocess.Popen(
            ["bash", "-c", script, path, *CHROMIUM_FLAGS,
             f"--user-data-dir={self.profile_dir}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        target = self.call("Target.createTarget", url="about:blank")
        self.session = self.call("Target.attachToTarget",
                                 targetId=target["targetId"],
                                 flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=self.width,
                  height=self.height, deviceScaleFactor=1, mobile=False,
                  session=True)
        self.call("Runtime.enable", session=True)
        self.call("Page.enable", session=True)
        return self

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self._send({"id": self._next_id(), "method": "Browser.close"})
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc = None

    def __enter__(self) -> "Browser":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- protocol ------------------------------------------------------------
    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_child, data):]

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError("no answer from chromium")
            ready, _, _ = select.select([self._from_child], [], [],
                                        remaining)
            if ready:
                chunk = os.read(self._from_child, 65536)
                if not chunk:
                    raise BrowserError("chromium closed the pipe")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, session: bool = False, **params) -> dict:
        message = {"id": self._next_id(), "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("method") == "Runtime.consoleAPICalled":
                args = reply["params"].get("args", [])
                self.console.append(" ".join(
                    str(a.get("value", a.get("description"))) for a in args))
            if reply.get("id") != message["id"]:
                continue    # an event, or a reply to something abandoned
            if "error" in reply:
                raise BrowserError(f"{method}: {reply['error']}")
            return reply.get("result", {})

    # -- page ----------------------------------------------------------------
    def open(self, url: str) -> None:
        result = self.call("Page.navigate", url=url, session=True)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression,
                           returnByValue=True, awaitPromise=True,
                           session=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        """Poll ``expression`` in the page until it is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"page never satisfied: {expression}")
            select.select([], [], [], 0.1)  # a poll interval, not a sync

    def screenshot(self, path: str) -> None:
        height = self.evaluate("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", width=self.width,
                  height=max(self.height, int(height)),
                  deviceScaleFactor=1, mobile=False, session=True)
        data = self.call("Page.captureScreenshot", format="png",
                         captureBeyondViewport=True, session=True)["data"]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
