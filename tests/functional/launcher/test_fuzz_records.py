"""Property-based: generated node and request payloads -- wrong types,
nulls, missing and extra keys, huge values, bytes that are not UTF-8 or not
JSON -- written into a real ZooKeeper next to valid requests, against one
running launcher.

Every valid request is fulfilled, the launcher's threads stay up, and its
log holds no traceback and no error (so none repeated per pass), and no
znode version is warned about more than once.  Hypothesis runs
derandomized, without an example database and without shrinking, so a run
is reproducible and bounded (about 15 s here); the cases that found bugs
are plain tests in ``test_bad_records.py`` and
``tests/unit/zk/test_record_schema.py``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.functional.launcher.helpers import errors_logged, fake_provider

pytestmark = pytest.mark.functional

PROVIDER = "fake-provider"
EXAMPLES = 30

VALID_REQUEST = {"state": "requested", "state_time": 1.0,
                 "node_types": ["small"], "nodes": [], "declined_by": [],
                 "reuse": True, "requestor": "fuzz", "requestor_data": None,
                 "provider": None, "relative_priority": 0, "event_id": None,
                 "created_time": 1.0, "tenant_name": None}
VALID_NODE = {"state": "ready", "state_time": 1.0, "created_time": 1.0,
              "provider": PROVIDER, "pool": "main", "type": ["small"],
              "allocated_to": None, "launcher": None, "external_id": None,
              "interface_ip": "127.0.0.1", "connection_port": 22,
              "ssh_port": 22, "username": "zuul", "host_keys": [],
              "resources": {"instances": 1}, "attributes": None,
              "node_properties": {}, "hold_expiration": None}

scalars = (st.none() | st.booleans() | st.integers()
           | st.integers(min_value=10 ** 300, max_value=10 ** 301)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12)
           | st.sampled_from(["small", "ready", "requested", PROVIDER,
                              "main", "yesterday", "high"])
           | st.integers(50000, 100000).map(lambda n: "x" * n))
# Values of the wrong JSON type, picked often because random JSON alone
# rarely lands on the shapes that hurt (an unhashable label, a word where a
# number is compared or subtracted, a string where a list is iterated).
NASTY = [None, True, -1, 1.5, 1e308, float("inf"), float("nan"), 10 ** 300,
         "", "small", "yesterday", [], [{"a": 1}], [["small"]],
         ["small", {"a": 1}], [None], [5], {"a": 1}, {"cores": "many"},
         [{"a": 1}, None, 5], [["x"]], "high", {}]
nasty = st.sampled_from(NASTY)
values = nasty | st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)
# The keys the launcher computes with (sorts, hashes, sums, compares).
HOT = {"requests": ["node_types", "relative_priority", "declined_by",
                    "reuse", "provider", "state_time", "nodes"],
       "nodes": ["type", "state_time", "resources", "allocated_to",
                 "provider", "pool", "created_time", "connection_port"]}


def mutated(base: dict, hot: list[str]) -> st.SearchStrategy[dict]:
    """``base`` with one hot key given a wrong value, maybe more keys
    changed (any value, the state too) and some keys removed."""
    keys = sorted(base) + ["span_info", "zzz"]
    first = st.tuples(st.sampled_from(hot), nasty)
    more = st.lists(st.tuples(st.sampled_from(keys), values), max_size=3)
    drops = st.lists(st.sampled_from(sorted(base)), max_size=2)

    def apply(parts) -> dict:
        change, changes, removed = parts
        out = dict(base)
        for key in removed:
            out.pop(key, None)
        out.update([change, *changes])
        return out
    return st.tuples(first, more, drops).map(apply)


def encode(payload: dict) -> bytes:
    return json.dumps(payload, allow_nan=True).encode()


raw_bytes = st.one_of(
    st.binary(max_size=64),
    st.just(b'\xff\xfe{"state": "requested", "node_types": ["small"]}'),
    st.just(b'{"state": "requested", "node_types": ["sm\xe9ll"]}'),
    st.just(b'{"state": "ready", "type": ["small"]'),
    st.just(b'["state", "requested"]'),
    st.just(b"null"), st.just(b"{}"))

planted = st.one_of(
    st.tuples(st.just("requests"),
              mutated(VALID_REQUEST, HOT["requests"]).map(encode)),
    st.tuples(st.just("nodes"),
              mutated(VALID_NODE, HOT["nodes"]).map(encode)),
    st.tuples(st.sampled_from(["requests", "nodes"]), raw_bytes))


# The launcher's own threads use ``random`` while examples are generated,
# which Hypothesis cannot tell from a strategy doing so; huge strings make
# long example reprs.  Neither is a problem of the test.
@pytest.mark.filterwarnings(
    "ignore::hypothesis.errors.HypothesisDeprecationWarning",
    "ignore:Generating overly large repr")
def test_generated_records_never_disturb_valid_requests(env, caplog):
    caplog.set_level(logging.INFO, logger="nodepool")
    pools = [{"name": "main", "max-servers": 500,
              "labels": [{"name": "small", "cloud-image": "fake-image"}]}]
    env.write_config([fake_provider(pools=pools, rate=1000)])
    launcher = env.start_launcher(cleanup_interval=1)
    client, zuul = env.client, env.zuul
    paths: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(planted, min_size=1, max_size=6),
           st.sampled_from(["100-", "200-", "900-", "x-", ""]))
    def run(records, prefix):
        for directory, data in records:
            name = prefix if directory == "requests" else ""
            paths.append(client.create(f"/nodepool/{directory}/{name}", data,
                                       sequence=True, makepath=True))
        rids = [zuul.submit(["small"]) for _ in range(2)]
        for rid in rids:
            result = zuul.wait_state(rid, {"fulfilled", "failed"},
                                     timeout=30)
            assert result["state"] == "fulfilled", (rid, result)
            zuul.release(zuul.accept(rid))

    run()
    # The launcher and every worker are still running and still serve.
    assert launcher._thread.is_alive()
    for worker in launcher.pool_workers().values():
        assert worker._thread.is_alive()
    last = zuul.submit(["small"])
    assert zuul.wait_state(last, {"fulfilled", "failed"})["state"] == \
        "fulfilled"
    assert errors_logged(caplog) == []
    warned = Counter(r.getMessage().split(":")[0] for r in caplog.records
                     if r.getMessage().startswith("Skipping znode "))
    for path in paths:
        stat = client.exists(path)
        versions = 1 + (stat.version if stat is not None else 1)
        assert warned[f"Skipping znode {path}"] <= versions, path
    assert sum(launcher.zk.quarantine.counts().values()) > 0
