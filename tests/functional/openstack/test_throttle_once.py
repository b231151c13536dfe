"""One layer handles a 429: ``OpenStackApi`` (``LimitedApi``'s loop).

Through the real openstacksdk and keystoneauth against the local
OpenStack: each 429 halves the write limiter exactly once and the call is
sent again; keystoneauth retries nothing behind the limiter's back; a lost
``POST /servers`` is not sent twice; and a launch whose create was
throttled reports nothing more than the API did.
"""

from __future__ import annotations

import pytest

from nodepool.driver import errors
from nodepool.driver.openstack.api import OpenStackApi, load_cloud_region
from tests.functional.openstack.helpers import (adapter_of, post_count,
                                                provider)

RATE_SECONDS = 0.01         # 100 calls/s: spacing is not what is tested


@pytest.fixture
def api(clouds_yaml):
    api = OpenStackApi("os", load_cloud_region("fake", "RegionOne"),
                       RATE_SECONDS, backoff=0.01, max_backoff=0.05)
    yield api
    api.close()


def create_server(api, name="throttle-once"):
    return api.compute("POST", "/servers", write=True,
                       operation="create server",
                       json={"server": {"name": name, "flavorRef": "1",
                                        "imageRef": _image_id(api),
                                        "networks": "auto"}})


def _image_id(api):
    images = api.read("find image", lambda: list(
        api.conn.image.images(name="ubuntu-jammy")))
    return images[0].id


def test_each_429_halves_the_limiter_once_and_the_call_is_sent_again(
        api, cloud):
    _image_id(api)                          # authenticated, discovered
    limiter = api.limiter
    cloud.fail_next_creates(1, status=429)
    before = post_count(cloud)
    answer = create_server(api)
    assert answer["server"]["id"]
    # The cloud saw the refused POST and the accepted one: nothing more
    # (keystoneauth repeated nothing by itself).
    assert post_count(cloud) - before == 2
    assert api.calls["create server"] == 2
    assert api.failures["create server"] == 1
    assert limiter.stats.throttled == 1
    # Halved once, then one success stepped it back up.
    assert limiter.effective_rate == pytest.approx(
        limiter.rate * limiter.backoff + limiter.recovery)

    cloud.fail_next_creates(2, status=429)
    create_server(api, "twice")
    assert limiter.stats.throttled == 3     # one report per 429 answer
    assert api.read_limiter.stats.throttled == 0


def test_throttles_past_the_deadline_raise_the_last_one(api, cloud):
    api.throttle_deadline = 0.0
    _image_id(api)
    cloud.fail_next_creates(5, status=429)
    before = post_count(cloud)
    with pytest.raises(errors.ThrottledError):
        create_server(api)
    # a deadline of 0: one answer, one report; the caller sees it
    assert (post_count(cloud) - before, api.limiter.stats.throttled) == \
        (1, 1)


def test_a_lost_server_create_is_not_sent_twice(api, cloud):
    _image_id(api)
    cloud.fail_next_creates(1, status=500)
    before = post_count(cloud)
    with pytest.raises(errors.TransientError):
        create_server(api)
    assert post_count(cloud) - before == 1
    assert not cloud.servers()


def test_a_throttled_launch_reports_each_429_once(env, cloud):
    env.write_config([provider(rate=RATE_SECONDS)])
    launcher = env.start_launcher()
    cloud.fail_next_creates(2, status=429)
    rid = env.zuul.submit(["small"])
    assert env.zuul.wait_state(rid, {"fulfilled", "failed"})["state"] == \
        "fulfilled"
    assert post_count(cloud) == 3
    api = adapter_of(launcher).api
    assert api.failures["create server"] == 2
    assert api.limiter.stats.throttled == 2
