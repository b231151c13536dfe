"""The Service Quotas JSON API for EC2 and EBS, which moto does not have.

boto3's ``service-quotas`` client speaks JSON 1.1: ``POST /`` with
``X-Amz-Target: ServiceQuotasV20190624.<Operation>`` and a JSON body.  This
module answers GetServiceQuota, GetAWSDefaultServiceQuota, ListServiceQuotas
and ListAWSDefaultServiceQuotas for the service codes ``ec2`` and ``ebs``
from a table of well-known quota codes whose values the test configures.
Unknown codes get ``NoSuchResourceException`` (HTTP 400) like AWS; other
operations get ``UnknownOperationException`` so a driver that starts using
one fails loudly instead of reading made-up data.

The values live in a :class:`QuotaTable` owned by the proxy; updates and
reads take its lock, so a test may change a quota while a launcher polls.
"""

from __future__ import annotations

import json
import threading

__all__ = ["DEFAULT_QUOTAS", "QUOTA_NAMES", "QuotaTable",
           "TARGET_PREFIX", "answer_quota_call"]

TARGET_PREFIX = "ServiceQuotasV20190624."
ACCOUNT_ID = "123456789012"  # moto's default account

SERVICE_NAMES = {
    "ec2": "Amazon Elastic Compute Cloud (Amazon EC2)",
    "ebs": "Amazon Elastic Block Store (Amazon EBS)",
}

# (service, code) -> name.  EC2 instance quotas count vCPUs, EBS storage
# quotas TiB; the API reports Unit "None" for both.
QUOTA_NAMES: dict[tuple[str, str], str] = {
    ("ec2", "L-1216C47A"): "Running On-Demand Standard (A, C, D, H, I, M, "
                           "R, T, Z) instances",
    ("ec2", "L-43DA4232"): "Running On-Demand High Memory instances",
    ("ec2", "L-DB2E81BA"): "Running On-Demand G and VT instances",
    ("ec2", "L-417A185B"): "Running On-Demand P instances",
    ("ec2", "L-7295265B"): "Running On-Demand X instances",
    ("ec2", "L-74FC7D96"): "Running On-Demand F instances",
    ("ec2", "L-1945791B"): "Running On-Demand Inf instances",
    ("ec2", "L-2C3B7624"): "Running On-Demand Trn instances",
    ("ec2", "L-6E869C2A"): "Running On-Demand DL instances",
    ("ec2", "L-F7808C92"): "Running On-Demand HPC instances",
    ("ec2", "L-34B43A08"): "All Standard (A, C, D, H, I, M, R, T, Z) Spot "
                           "Instance Requests",
    ("ec2", "L-3819A6DF"): "All G and VT Spot Instance Requests",
    ("ec2", "L-7212CCBC"): "All P Spot Instance Requests",
    ("ec2", "L-E3A00192"): "All X Spot Instance Requests",
    ("ec2", "L-88CF9481"): "All F Spot Instance Requests",
    ("ec2", "L-B5D1601B"): "All Inf Spot Instance Requests",
    ("ec2", "L-6B0D517C"): "All Trn Spot Instance Requests",
    ("ec2", "L-85EED4F7"): "All DL Spot Instance Requests",
    ("ebs", "L-D18FCD1D"): "Storage for General Purpose SSD (gp2) volumes, "
                           "in TiB",
    ("ebs", "L-7A658B76"): "Storage for General Purpose SSD (gp3) volumes, "
                           "in TiB",
    ("ebs", "L-FD252861"): "Storage for Provisioned IOPS SSD (io1) volumes, "
                           "in TiB",
    ("ebs", "L-09BD8365"): "Storage for Provisioned IOPS SSD (io2) volumes, "
                           "in TiB",
    ("ebs", "L-82ACEF56"): "Storage for Throughput Optimized HDD (st1) "
                           "volumes, in TiB",
    ("ebs", "L-17AF77E8"): "Storage for Cold HDD (sc1) volumes, in TiB",
    ("ebs", "L-9CF3C2EB"): "Storage for Magnetic (standard) volumes, in TiB",
    ("ebs", "L-B3A130E6"): "IOPS for Provisioned IOPS SSD (io1) volumes",
    ("ebs", "L-8D977E7E"): "IOPS for Provisioned IOPS SSD (io2) volumes",
    ("ebs", "L-309BACF6"): "Snapshots per Region",
}

_DEFAULT_VALUES = {
    "L-1216C47A": 640.0, "L-43DA4232": 448.0, "L-DB2E81BA": 64.0,
    "L-417A185B": 64.0, "L-7295265B": 128.0, "L-74FC7D96": 128.0,
    "L-1945791B": 64.0, "L-2C3B7624": 256.0, "L-6E869C2A": 96.0,
    "L-F7808C92": 768.0, "L-34B43A08": 640.0, "L-3819A6DF": 64.0,
    "L-7212CCBC": 64.0, "L-E3A00192": 128.0, "L-88CF9481": 128.0,
    "L-B5D1601B": 64.0, "L-6B0D517C": 256.0, "L-85EED4F7": 96.0,
    "L-D18FCD1D": 50.0, "L-7A658B76": 50.0, "L-FD252861": 50.0,
    "L-09BD8365": 20.0, "L-82ACEF56": 50.0, "L-17AF77E8": 50.0,
    "L-9CF3C2EB": 50.0, "L-B3A130E6": 300000.0, "L-8D977E7E": 100000.0,
    "L-309BACF6": 100000.0,
}

DEFAULT_QUOTAS: dict[str, dict[str, float]] = {
    service: {code: _DEFAULT_VALUES[code]
              for (svc, code) in QUOTA_NAMES if svc == service}
    for service in SERVICE_NAMES
}


class QuotaTable:
    """Configured quota values: ``{"ec2": {"L-1216C47A": 640.0}, ...}``."""

    def __init__(self, values: dict[str, dict[str, float]] | None = None):
        self._lock = threading.Lock()
        self._values = {s: dict(v) for s, v in DEFAULT_QUOTAS.items()}
        self.update(values or {})

    def update(self, values: dict[str, dict[str, float]]) -> None:
        """Merge new values; a code unknown to AWS raises ValueError."""
        with self._lock:
            for service, codes in values.items():
                if service not in SERVICE_NAMES:
                    raise ValueError(f"unsupported service code {service!r}")
                for code, value in codes.items():
                    if (service, code) not in QUOTA_NAMES:
                        raise ValueError(f"unknown quota {service}/{code}")
                    self._values[service][code] = float(value)

    def value(self, service: str, code: str) -> float:
        with self._lock:
            return self._values[service][code]

    def to_dict(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {s: dict(v) for s, v in self._values.items()}

    def quota(self, service: str, code: str, region: str,
              default: bool = False) -> dict | None:
        """One quota in the API's shape, or None if AWS has no such quota."""
        if (service, code) not in QUOTA_NAMES:
            return None
        with self._lock:
            value = (_DEFAULT_VALUES[code] if default
                     else self._values[service][code])
        return {
            "ServiceCode": service,
            "ServiceName": SERVICE_NAMES[service],
            "QuotaArn": f"arn:aws:servicequotas:{region}:{ACCOUNT_ID}:"
                        f"{service}/{code}",
            "QuotaCode": code,
            "QuotaName": QUOTA_NAMES[(service, code)],
            "Value": value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }

    def codes(self, service: str) -> list[str]:
        return sorted(c for (s, c) in QUOTA_NAMES if s == service)


def _error(kind: str, message: str) -> tuple[int, dict]:
    return 400, {"__type": kind, "message": message, "Message": message}


def answer_quota_call(table: QuotaTable, operation: str, body: bytes,
                      region: str) -> tuple[int, dict]:
    """HTTP status and JSON document for one Service Quotas call."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return _error("IllegalArgumentException", "body is not JSON")
    service = request.get("ServiceCode", "")
    default = "AWSDefault" in operation
    if operation in ("GetServiceQuota", "GetAWSDefaultServiceQuota"):
        quota = table.quota(service, request.get("QuotaCode", ""), region,
                            default)
        if quota is None:
            return _error("NoSuchResourceException",
                          f"The request failed because the specified quota "
                          f"{service}/{request.get('QuotaCode')} does not "
                          f"exist.")
        return 200, {"Quota": quota}
    if operation in ("ListServiceQuotas", "ListAWSDefaultServiceQuotas"):
        if service not in SERVICE_NAMES:
            return _error("NoSuchResourceException",
                          f"The request failed because the specified "
                          f"service {service} does not exist.")
        return 200, _list_page(table, service, region, default, request)
    return _error("UnknownOperationException",
                  f"The fake Service Quotas API does not serve {operation}")


def _list_page(table: QuotaTable, service: str, region: str, default: bool,
               request: dict) -> dict:
    codes = table.codes(service)
    start = int(request.get("NextToken") or 0)
    size = int(request.get("MaxResults") or 100)
    page = codes[start:start + size]
    doc: dict = {"Quotas": [table.quota(service, c, region, default)
                            for c in page]}
    if start + size < len(codes):
        doc["NextToken"] = str(start + size)
    return doc
