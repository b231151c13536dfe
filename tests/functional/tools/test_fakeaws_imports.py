"""tools.fakeaws import tasks: the Describe*ImportTasks moto lacks.

boto3 against the proxy over HTTP, as the launcher sees it: seeded tasks
are listed with their tags and results, by id or all of them, in pages;
an unknown id is EC2's ``InvalidConversionTaskId.Malformed``; throttling
and faults apply as to any EC2 call; a reset drops the tasks.
"""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tools.fakeaws import LocalAWS

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
TAGS = {"nodepool_provider_name": "aws", "nodepool_upload_id": "0000000001"}


@pytest.fixture(scope="module")
def local():
    aws = LocalAWS(run_instances_latency=0.01, throttle=False).start()
    yield aws
    aws.stop()


@pytest.fixture
def aws(local):
    local.restore_config()
    local.clear_faults()
    local.reset()
    return local


def _tags(task: dict) -> dict:
    return {t["Key"]: t["Value"] for t in task.get("Tags") or []}


def test_snapshot_and_image_tasks_are_listed(aws):
    ec2 = aws.client("ec2", config=NO_RETRY)
    assert ec2.describe_import_snapshot_tasks()["ImportSnapshotTasks"] == []
    snap_task = aws.add_import_task("snapshot", TAGS, snapshot_id="snap-1")
    image_task = aws.add_import_task("image", TAGS, image_id="ami-1",
                                     snapshot_id="snap-2",
                                     id="import-ami-0123")
    [task] = ec2.describe_import_snapshot_tasks()["ImportSnapshotTasks"]
    assert task["ImportTaskId"] == snap_task
    assert task["SnapshotTaskDetail"]["SnapshotId"] == "snap-1"
    assert task["SnapshotTaskDetail"]["Status"] == "completed"
    assert _tags(task) == TAGS
    [task] = ec2.describe_import_image_tasks(
        ImportTaskIds=[image_task])["ImportImageTasks"]
    assert (task["ImportTaskId"], task["ImageId"]) == ("import-ami-0123",
                                                       "ami-1")
    assert [d["SnapshotId"] for d in task["SnapshotDetails"]] == ["snap-2"]
    assert _tags(task) == TAGS
    # Other regions have their own tasks.
    other = aws.client("ec2", region="eu-west-1", config=NO_RETRY)
    assert other.describe_import_image_tasks()["ImportImageTasks"] == []


def test_unknown_task_and_pages(aws):
    ec2 = aws.client("ec2", config=NO_RETRY)
    with pytest.raises(ClientError) as info:
        ec2.describe_import_image_tasks(ImportTaskIds=["import-ami-0nope"])
    assert info.value.response["Error"]["Code"] == \
        "InvalidConversionTaskId.Malformed"
    ids = [aws.add_import_task("snapshot", TAGS, snapshot_id=f"snap-{i}")
           for i in range(7)]
    pages = ec2.get_paginator("describe_import_snapshot_tasks").paginate(
        PaginationConfig={"PageSize": 3})
    sizes, seen = [], []
    for page in pages:
        sizes.append(len(page["ImportSnapshotTasks"]))
        seen += [t["ImportTaskId"] for t in page["ImportSnapshotTasks"]]
    assert sizes == [3, 3, 1] and seen == ids


def test_faults_apply_and_reset_drops_tasks(aws):
    ec2 = aws.client("ec2", config=NO_RETRY)
    aws.add_import_task("snapshot", TAGS, snapshot_id="snap-1")
    aws.inject_fault("InternalError", action="DescribeImportSnapshotTasks")
    with pytest.raises(ClientError) as info:
        ec2.describe_import_snapshot_tasks()
    assert info.value.response["Error"]["Code"] == "InternalError"
    assert len(ec2.describe_import_snapshot_tasks()[
        "ImportSnapshotTasks"]) == 1
    assert aws.stats()["calls"]["DescribeImportSnapshotTasks"] == 2
    aws.reset()
    assert aws.import_tasks() == []
    assert ec2.describe_import_snapshot_tasks()["ImportSnapshotTasks"] == []
    with pytest.raises(ValueError, match="kind must be"):
        aws.add_import_task("volume", TAGS)
