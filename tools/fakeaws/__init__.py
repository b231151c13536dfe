"""A local AWS for tests, the demo and benchmarks: moto behind an EC2-like
proxy.

moto answers EC2 calls in milliseconds, never throttles and has no Service
Quotas for EC2/EBS, so a launcher tested only against moto never meets
what makes EC2 hard.  The proxy in front adds those:

* latency per action (RunInstances 1.5 s by default), per call, so parallel
  calls overlap as on EC2;
* EC2's token buckets per region, answering ``RequestLimitExceeded``
  (HTTP 503) with EC2's XML error body;
* the Service Quotas JSON API for ``ec2``/``ebs`` with configurable values;
* scripted faults (InsufficientInstanceCapacity, VcpuLimitExceeded,
  InternalError, delays...);
* optionally, enforcement of the vCPU quotas on RunInstances;
* optionally, a refused access key (``refuse_credentials``: every EC2 and
  Service Quotas call answers ``AuthFailure`` or
  ``UnrecognizedClientException``);
* EC2's launch count: up to MaxCount (moto alone starts MinCount);
* DescribeImportSnapshotTasks / DescribeImportImageTasks, from import
  tasks a test seeds (moto has neither, see ``imports``);
* counters per action and per RunInstances, as JSON on ``/_fake/stats``;
* everything reconfigurable at run time via ``POST /_fake/config``.

Modules: ``local`` (LocalAWS), ``proxy`` (HTTP front), ``ec2`` (per-call
pipeline), ``throttle``, ``faults``, ``quotas``, ``ledger`` (vCPUs in use),
``imports`` (import tasks), ``config`` (run-time flags), ``stats``,
``control`` (``/_fake/`` endpoints), ``forward`` (relay to moto), ``motoserver`` (moto child),
``motochild`` (what moto lacks, its hot paths), ``motoxml`` (its XML writer),
``bootstrap`` (image/subnet/key pair), ``__main__`` (CLI).

Measured here (2 cores): the proxy adds ~1-2 ms per call and ~25-60 MB;
moto takes ~175 MB.  moto answers one call at a time, and what an EC2
answer costs it is writing the records: about 0.9 ms of CPU per instance
record in a DescribeInstances or RunInstances answer with ``motochild``'s
fast paths (1.7 ms without them), filters next to nothing, so a listing
of 1,000 instances holds every other call for about a second.  Ask for the
ids in flight, not for everything.  The first EC2 call in a region after
start or reset loads moto's built-in AMIs (0.3-4 s).

>>> from tools.fakeaws import LocalAWS
>>> aws = LocalAWS(run_instances_latency=1.5).start()
>>> os.environ.update(aws.env()); ids = aws.bootstrap()
>>> aws.stop()
"""

from tools.fakeaws.local import LocalAWS

__all__ = ["LocalAWS"]
