"""The declared record schemas (nodepool/zk/schema.py): what a node,
request or component read from ZooKeeper may hold.

The cases of the hardening issue are here as plain tests (each one broke
the launcher before the schema existed), next to the shapes upstream
Nodepool 11 and Zuul 14 write, which must keep reading.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodepool.zk import BadZnode, Node, NodeRequest, PoolComponent
from nodepool.zk.component import LauncherComponent
from nodepool.zk.node import NODE_SCHEMA
from nodepool.zk.request import REQUEST_SCHEMA


def bad(cls, payload):
    with pytest.raises(BadZnode) as info:
        if cls in (PoolComponent, LauncherComponent):
            cls.from_dict(payload)
        else:
            cls.from_dict("0000000001", payload)
    return info.value


# -- the records ---------------------------------------------------
def test_unhashable_request_labels_are_refused_naming_the_item():
    exc = bad(NodeRequest, {"state": "requested",
                            "node_types": [{"a": 1}, None, 5]})
    assert exc.field == "node_types"
    assert str(exc) == ("field 'node_types[0]': expected a string, got an "
                        "object")


def test_nested_node_labels_are_refused():
    exc = bad(Node, {"state": "ready", "type": [["x"]]})
    assert exc.field == "type"
    assert "type[0]" in str(exc) and "an array" in str(exc)


def test_a_state_time_that_is_not_a_number_is_refused():
    exc = bad(Node, {"state": "ready", "state_time": "yesterday"})
    assert str(exc) == ("field 'state_time': expected a number or null, "
                        "got a string")


def test_a_string_node_types_is_refused_not_split_into_characters():
    exc = bad(NodeRequest, {"state": "requested",
                            "node_types": "ubuntu-small"})
    assert exc.field == "node_types"
    assert "got a string" in str(exc)


def test_a_word_for_relative_priority_is_refused_not_read_as_zero():
    exc = bad(NodeRequest, {"state": "requested",
                            "relative_priority": "high"})
    assert exc.field == "relative_priority"


# -- what upstream and Zuul write keeps reading ------------------------------
def test_a_request_as_zuul_writes_it_reads():
    # zuul/model.py NodeRequest.toDict(), before nodepool ever touched it.
    payload = {"requestor_data": {"build_set_uuid": "b", "tenant_name": "t",
                                  "pipeline_name": "check", "job_uuid": "j",
                                  "job_name": "tox", "span_info": None},
               "node_types": ["ubuntu"], "requestor": "zuul01",
               "created_time": None, "provider": None,
               "state": "requested", "state_time": 1700000000.5,
               "relative_priority": 0, "event_id": None,
               "tenant_name": "t"}
    request = NodeRequest.from_dict("200-0000000001", payload)
    assert request.node_types == ["ubuntu"]
    assert request.nodes == [] and request.declined_by == []
    assert request.reuse is True
    assert request.to_dict()["requestor_data"] == payload["requestor_data"]


def test_nulls_read_as_the_defaults():
    request = NodeRequest.from_dict("1", {
        "state": "requested", "node_types": None, "nodes": None,
        "declined_by": None, "reuse": None, "relative_priority": None})
    assert (request.node_types, request.nodes, request.declined_by) == \
        ([], [], [])
    assert request.reuse is True and request.relative_priority == 0


def test_a_node_as_upstream_writes_it_reads():
    payload = {key: None for key in NODE_SCHEMA.rules}
    payload.update(state="ready", state_time=1700000000.0, type=["small"],
                   external_id={"instance": "i-0abc"}, ssh_port=22,
                   connection_port=22, host_keys=[], node_properties={},
                   resources={"cores": 2, "instances": 1, "ram": 8192,
                              "L-1216C47A": 2})
    node = Node.from_dict("0000000001", payload)
    assert node.type == ["small"] and node.host_keys == []
    assert node.external_id == {"instance": "i-0abc"}


def test_a_node_as_zuul_writes_it_back_reads():
    # zuul/model.py Node.toDict(): an "id" key and every key it read.
    node = Node.from_dict("0000000007", {
        "id": "0000000007", "state": "in-use", "hold_job": None,
        "comment": None, "user_data": {"x": 1}, "tenant_name": "t",
        "requestor": "zuul01", "type": "ubuntu", "connection_port": "5986",
        "hold_expiration": "3600", "slot": 0})
    assert node.type == ["ubuntu"]
    assert node.connection_port == "5986"
    assert node.hold_expiration == 3600
    assert node.to_dict()["id"] == "0000000007"     # unknown key kept


def test_unknown_keys_of_a_good_record_are_kept():
    request = NodeRequest.from_dict("1", {"state": "requested",
                                          "span_info": {"t": [1, None]}})
    assert request.to_dict()["span_info"] == {"t": [1, None]}


def test_an_upstream_pool_component_registered_before_its_fields_reads():
    # Upstream registers a pool component first and sets id/name later.
    component = PoolComponent.from_dict({
        "hostname": "nl01", "state": "running", "kind": "pool",
        "version": None, "model_api": 0, "id": None, "name": None,
        "provider_name": None, "supported_labels": [], "priority": 100,
        "paused": False})
    assert component.id is None and component.priority == 100


# -- types the launcher relies on ---------------------------------------------
@pytest.mark.parametrize("value", [True, "1", [1], math.inf, 10 ** 400])
def test_times_must_be_finite_numbers(value):
    assert bad(Node, {"state": "ready", "created_time": value}).field == \
        "created_time"


# Numbers where lists belong were found by the fuzz test
# (tests/functional/launcher/test_fuzz_records.py): they raised TypeError
# out of every read of the cache instead of a quarantine.
@pytest.mark.parametrize("key,value", [
    ("node_types", 1.5), ("nodes", 1.5), ("declined_by", 1.5),
    ("reuse", "no"), ("nodes", "0000000001"), ("declined_by", [1]),
    ("provider", 5), ("tenant_name", ["t"]), ("event_id", {})])
def test_request_key_types(key, value):
    assert bad(NodeRequest, {"state": "requested", key: value}).field == key


@pytest.mark.parametrize("key,value", [
    ("type", 1.5), ("host_keys", 1.5),
    ("resources", {"cores": "2"}), ("resources", [1]),
    ("provider", {"p": 1}), ("allocated_to", 1), ("host_keys", "ssh-rsa"),
    ("connection_port", 22.5), ("slot", "1"), ("attributes", []),
    ("external_id", [1]), ("pool", True)])
def test_node_key_types(key, value):
    assert bad(Node, {"state": "ready", key: value}).field == key


@pytest.mark.parametrize("payload", [
    {"state": "running", "priority": "high"},
    {"state": "running", "supported_labels": [{"a": 1}]},
    {"state": "running", "paused": "yes"},
    {"state": "asleep"}, {}])
def test_pool_component_types(payload):
    bad(PoolComponent, payload)


def test_missing_and_unknown_states_are_named():
    assert str(bad(Node, {"type": ["x"]})) == "field 'state': missing"
    assert str(bad(NodeRequest, {"state": "done"})) == \
        "field 'state': unknown state 'done'"


def test_huge_values_are_quoted_short():
    exc = bad(NodeRequest, {"state": "x" * 100000})
    assert len(str(exc)) < 100


def test_schema_check_returns_the_reason():
    assert REQUEST_SCHEMA.check({"state": "requested"}) is None
    assert REQUEST_SCHEMA.check([]) == "payload is an array, not an object"


# -- property: reading never fails any other way ------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


def payloads(schema, states):
    keys = st.sampled_from(sorted(schema.rules) + ["extra"])
    return st.dictionaries(keys, json_values, max_size=8).flatmap(
        lambda d: st.sampled_from(sorted(states) + ["bogus"]).map(
            lambda state: {**d, "state": state}) | st.just(d))


def _check_record(record) -> None:
    # What the launcher does with a record: sort, hash labels, subtract.
    json.dumps(record.to_dict(), allow_nan=True)
    if isinstance(record, NodeRequest):
        assert all(isinstance(t, str) for t in record.node_types)
        set(record.node_types), set(record.declined_by)
        sorted([record.sort_key(), ("100", 0, "")])
    else:
        assert all(isinstance(t, str) for t in record.type)
        set(record.type)
        if record.state_time is not None:
            1.0 - record.state_time


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(payloads(REQUEST_SCHEMA, NodeRequest.STATES)
       | payloads(NODE_SCHEMA, Node.STATES))
def test_any_payload_reads_as_a_usable_record_or_bad_znode(payload):
    for cls in (NodeRequest, Node):
        try:
            record = cls.from_dict("100-0000000001", payload)
        except BadZnode as exc:
            assert str(exc).startswith(("field '", "payload is"))
            continue
        _check_record(record)
