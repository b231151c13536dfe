"""Find or make what a launch needs in one moto region.

moto starts every region with a default VPC (one default subnet per zone,
a ``default`` security group) and ~1,300 built-in AMIs, but no key pair.
:func:`bootstrap_region` picks a deterministic Amazon Linux 2 x86_64 AMI,
the default subnet of the first zone and its VPC's default group, and
creates the key pair ``fakeaws`` if it is missing.

A filtered DescribeImages answers in ~15 ms; an unfiltered one walks all
built-in images and takes 2-3 s here, hence the name filter first and the
unfiltered call only as a fallback.  Runs against moto directly (not the
proxy), so it costs no tokens and does not show in the stats.
"""

from __future__ import annotations

__all__ = ["KEY_NAME", "bootstrap_region"]

KEY_NAME = "fakeaws"


def _client(moto_url: str, region: str):
    import boto3
    return boto3.client("ec2", endpoint_url=moto_url, region_name=region,
                        aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _pick_image(ec2) -> str:
    images = ec2.describe_images(
        Owners=["amazon"],
        Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]},
                 {"Name": "architecture", "Values": ["x86_64"]}])["Images"]
    if not images:
        images = ec2.describe_images(Filters=[
            {"Name": "architecture", "Values": ["x86_64"]}])["Images"]
    if not images:
        raise RuntimeError("moto has no x86_64 image in this region")
    return sorted(images, key=lambda i: (i.get("Name", ""),
                                         i["ImageId"]))[-1]["ImageId"]


def _ensure_key_pair(ec2) -> None:
    pairs = ec2.describe_key_pairs(
        Filters=[{"Name": "key-name", "Values": [KEY_NAME]}])["KeyPairs"]
    if not pairs:
        ec2.create_key_pair(KeyName=KEY_NAME)


def bootstrap_region(moto_url: str, region: str) -> dict[str, str]:
    """``{"region", "image_id", "subnet_id", "vpc_id", "availability_zone",
    "security_group_id", "key_name"}`` for launches in ``region``, plus
    ``subnet_ids``/``availability_zones``: every default subnet and its
    zone, in zone order (the first is ``subnet_id``)."""
    ec2 = _client(moto_url, region)
    subnets = ec2.describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    if not subnets:
        raise RuntimeError(f"moto has no default subnet in {region}")
    subnets = sorted(subnets, key=lambda s: s["AvailabilityZone"])
    subnet = subnets[0]
    groups = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": ["default"]},
        {"Name": "vpc-id", "Values": [subnet["VpcId"]]}])["SecurityGroups"]
    _ensure_key_pair(ec2)
    return {
        "region": region,
        "image_id": _pick_image(ec2),
        "subnet_id": subnet["SubnetId"],
        "vpc_id": subnet["VpcId"],
        "availability_zone": subnet["AvailabilityZone"],
        "security_group_id": groups[0]["GroupId"],
        "key_name": KEY_NAME,
        "subnet_ids": [s["SubnetId"] for s in subnets],
        "availability_zones": [s["AvailabilityZone"] for s in subnets],
    }
