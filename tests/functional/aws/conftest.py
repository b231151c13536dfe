"""Fixtures for AWS driver tests: the local AWS over HTTP, real ZooKeeper.

One ``LocalAWS`` (moto behind the EC2-like proxy, child process) serves
the whole session; ``aws`` puts it back to its start flags, resets moto and
the counters, bootstraps an image/subnet/key pair and points boto3 at it
through the environment (``AWS_ENDPOINT_URL``...) before each test, so the
launcher in the test process finds it exactly as it would find AWS.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.functional.launcher.helpers import LauncherEnv
from tools.fakeaws import LocalAWS

#: short RunInstances latency: the mechanisms, not the waiting, are tested
LATENCY = 0.05


@dataclass
class AwsEnv:
    local: LocalAWS
    boot: dict

    def ec2(self):
        return self.local.client("ec2")

    def provider(self, name: str = "aws", pools=None, labels=None,
                 pool_extra: dict | None = None, **extra) -> dict:
        """A provider config dict on the bootstrapped region."""
        labels = labels or [self.label()]
        pool = {"name": "main", "max-servers": 10,
                "subnet-id": self.boot["subnet_id"],
                "security-group-id": self.boot["security_group_id"],
                "host-key-checking": False, "labels": labels}
        pool.update(pool_extra or {})
        provider = {
            "name": name, "driver": "aws",
            "region-name": self.boot["region"],
            "rate": 100,
            "cloud-images": [{"name": "ami", "username": "zuul",
                              "image-id": self.boot["image_id"]}],
            "pools": pools or [pool],
        }
        provider.update(extra)
        return provider

    def label(self, name: str = "small", **extra) -> dict:
        label = {"name": name, "cloud-image": "ami",
                 "instance-type": "t3.medium",
                 "key-name": self.boot["key_name"]}
        label.update(extra)
        return label

    def run_tagged(self, tags: dict, instance_type: str = "t3.micro") -> str:
        """The id of an instance started behind the launcher's back (an
        upstream leak, another installation's, ...), tagged ``tags``."""
        pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
        answer = self.ec2().run_instances(
            ImageId=self.boot["image_id"], MinCount=1, MaxCount=1,
            InstanceType=instance_type,
            TagSpecifications=[{"ResourceType": "instance", "Tags": pairs}])
        return answer["Instances"][0]["InstanceId"]

    def instances(self, direct: bool = False, **filters) -> list[dict]:
        """Every instance moto knows, not terminated: asked via the proxy,
        or (``direct``) of moto itself, past the proxy's faults."""
        import boto3
        ec2 = boto3.client(
            "ec2", endpoint_url=self.local.moto_url,
            region_name=self.boot["region"], aws_access_key_id="testing",
            aws_secret_access_key="testing") if direct else self.ec2()
        flt = [{"Name": k, "Values": v} for k, v in filters.items()]
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=flt)
        return [i for page in pages for r in page["Reservations"]
                for i in r["Instances"]
                if i["State"]["Name"] != "terminated"]


@pytest.fixture(scope="session")
def local_aws():
    local = LocalAWS(run_instances_latency=LATENCY, throttle=False)
    local.start()
    yield local
    local.stop()


@pytest.fixture
def aws(local_aws, monkeypatch):
    local_aws.restore_config()
    local_aws.reset()
    for key, value in local_aws.env().items():
        monkeypatch.setenv(key, value)
    yield AwsEnv(local_aws, local_aws.bootstrap())


@pytest.fixture
def env(zk, tmp_path, aws):
    with LauncherEnv(zk, tmp_path) as e:
        yield e
