"""``leaked_by``: upstream Nodepool 11's leak rule, case by case."""

from nodepool.launcher.cleanup import Known, leaked_by

KNOWN = Known(nodes={"0000000001"}, uploads={"0000000007-0000000001"})


def test_other_providers_and_untagged_objects_are_not_ours():
    assert leaked_by({}, "aws", KNOWN) is None
    assert leaked_by({"nodepool_provider_name": "gce",
                      "nodepool_node_id": "9"}, "aws", KNOWN) is None


def test_neither_node_nor_upload_id_is_never_a_leak():
    assert leaked_by({"nodepool_provider_name": "aws"}, "aws", KNOWN) is None
    # A build id alone names no upload (upstream keys on the upload id).
    assert leaked_by({"nodepool_provider_name": "aws",
                      "nodepool_build_id": "0000000099"}, "aws",
                     KNOWN) is None


def test_node_ids():
    ours = {"nodepool_provider_name": "aws"}
    assert leaked_by({**ours, "nodepool_node_id": "0000000001"}, "aws",
                     KNOWN) is None
    assert "0000000002" in leaked_by(
        {**ours, "nodepool_node_id": "0000000002"}, "aws", KNOWN)
    assert leaked_by({**ours, "nodepool_node_id": ""}, "aws", KNOWN) is None


def test_upload_ids():
    ours = {"nodepool_provider_name": "aws", "nodepool_build_id":
            "0000000007"}
    assert leaked_by({**ours, "nodepool_upload_id": "0000000001"}, "aws",
                     KNOWN) is None
    assert "0000000007-0000000002" in leaked_by(
        {**ours, "nodepool_upload_id": "0000000002"}, "aws", KNOWN)


def test_another_installations_objects_are_never_leaks():
    theirs = {"nodepool_provider_name": "aws",
              "nodepool_node_id": "0000000002",
              "nodepool_installation": "theirs"}
    assert leaked_by(theirs, "aws", KNOWN, "ours") is None
    assert leaked_by({**theirs, "nodepool_node_id": "",
                      "nodepool_build_id": "0000000007",
                      "nodepool_upload_id": "0000000002"}, "aws", KNOWN,
                     "ours") is None


def test_our_installations_and_untagged_objects_follow_the_rule():
    unknown = {"nodepool_provider_name": "aws",
               "nodepool_node_id": "0000000002"}
    assert "0000000002" in leaked_by(
        {**unknown, "nodepool_installation": "ours"}, "aws", KNOWN, "ours")
    # Upstream Nodepool's (and our pre-upgrade) objects carry no id.
    assert "0000000002" in leaked_by(unknown, "aws", KNOWN, "ours")
    assert leaked_by({**unknown, "nodepool_node_id": "0000000001",
                      "nodepool_installation": "ours"}, "aws", KNOWN,
                     "ours") is None
