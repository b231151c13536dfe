"""The status page in headless Chromium: it shows the launcher's state and
keeps up with it without reloading.

One page load follows the launcher through a failed launch attempt (its
error shown as text, control characters escaped), a
fulfilled request, a request every pool declines, and a pool pausing at
max-servers (the waiting request saying why); a screenshot of the final state is saved under
``artifacts/web/`` for a human to look at.
"""

from __future__ import annotations

import json
import os

from nodepool.driver import fake
from nodepool.driver.errors import LaunchError
from tests.functional.launcher.helpers import fake_provider
from tests.functional.web.browser import Browser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SCREENSHOT = os.path.join(ROOT, "artifacts", "web", "status-page.png")


def q(selector: str) -> str:
    """JS: the text of the first element matching ``selector``, or null."""
    return (f"(document.querySelector({json.dumps(selector)}) || "
            "{textContent: null}).textContent")


def test_status_page_follows_the_launcher(env, webapp, chromium, tmp_path):
    env.write_config(
        [fake_provider(pools=[{"name": "main", "max-servers": 1,
                               "labels": [{"name": "small",
                                           "cloud-image": "fake-image"}]}],
                       rate=50)],
        labels=[{"name": "small"}, {"name": "nowhere"}])
    launcher = env.start_launcher()
    app = webapp(launcher)
    fake.cloud_for("fake-provider").create_errors.append(
        LaunchError("fake cloud: <b>boom</b>\x1b[2J\u202e",
                    stat_key="error.status"))
    pool_row = '[data-pool="fake-provider/main"]'

    with Browser(tmp_path / "profile") as page:
        page.open(f"{app.url}/")
        page.wait_for("window.nodepoolStatus.updates >= 1")
        loaded_at = page.evaluate("window.nodepoolStatus.loadedAt")
        assert page.evaluate(q("#ready-badge")) == "ready"
        assert page.evaluate(f"document.querySelector('{pool_row}')"
                             ".dataset.paused") == "false"

        # 1. a request launches a node (after one failed attempt)
        first = env.zuul.submit(["small"])
        assert env.zuul.wait_state(first, {"fulfilled", "failed"})[
            "state"] == "fulfilled"
        page.wait_for(f"{q('tr[data-label=small] td[data-state=ready]')}"
                      " === '1'")
        page.wait_for(f"{q(f'tr[data-request={json.dumps(first)}]')}"
                      ".includes('fulfilled')")
        errors = page.evaluate(
            "[...document.querySelectorAll('#error-rows tr[data-result]')]"
            ".map(r => r.textContent)")
        assert len(errors) == 1 and "error.status" in errors[0]
        # shown as text, not markup, control characters escaped
        assert "fake cloud: <b>boom</b>\\x1b[2J\\u202e" in errors[0]
        assert "\x1b" not in errors[0] and "\u202e" not in errors[0]
        assert page.evaluate("document.querySelector('#error-rows b')") \
            is None
        assert page.evaluate(q('[data-provider="fake-provider"] '
                               '[data-result="ready"]')) == "ready: 1"
        calls = page.evaluate(q('[data-limiter="fake-provider-mutate"] '
                                'td:nth-child(6)'))
        assert int(calls) >= 2

        # 2. a label no pool has: declined, and the page says by whom
        declined = env.zuul.submit(["nowhere"])
        env.zuul.wait_state(declined, {"failed"})
        chip = f'tr[data-request="{declined}"] [data-declined-by]'
        page.wait_for(f"{q(chip)} === 'fake-provider-main'")
        assert "failed" in page.evaluate(
            q(f'tr[data-request="{declined}"]'))

        # 3. max-servers 1 is used up: the next request pauses the pool
        second = env.zuul.submit(["small"])
        page.wait_for(f"document.querySelector('{pool_row}')"
                      ".dataset.paused === 'true'")
        assert "paused" in page.evaluate(q(pool_row))
        page.wait_for(f"{q(f'tr[data-request={json.dumps(second)}]')}"
                      ".includes('pending')")
        quota = page.evaluate(q(f'{pool_row} [data-resource="instances"]'))
        assert quota.replace(" ", "") == "instances1/1"
        # ... and the request's row says why it waits
        wait = f'tr[data-request="{second}"] [data-wait-kind="quota"]'
        page.wait_for(f"({q(wait)} || '').includes('at quota: pool "
                      "max-servers reached: instances needs 1, 0 free')")

        # all of that without a reload
        assert page.evaluate("window.nodepoolStatus.loadedAt") == loaded_at
        assert page.evaluate(
            "performance.getEntriesByType('navigation').length") == 1
        assert page.evaluate("window.nodepoolStatus.updates") >= 3
        assert page.evaluate("document.getElementById('conn-error').hidden")
        page.screenshot(SCREENSHOT)
    assert os.path.getsize(SCREENSHOT) > 10_000
