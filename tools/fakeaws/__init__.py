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
* counters per action and per RunInstances, as JSON on ``/_fake/stats``;
* everything reconfigurable at run time via ``POST /_fake/config``.

Modules: ``local`` (LocalAWS), ``proxy`` (HTTP front), ``ec2`` (per-call
pipeline), ``throttle``, ``faults``, ``quotas``, ``config``, ``stats``,
``control`` (``/_fake/`` endpoints), ``forward`` (relay to moto),
``motoserver`` (moto child), ``bootstrap`` (image/subnet/key pair).

>>> from tools.fakeaws import LocalAWS
>>> aws = LocalAWS(run_instances_latency=1.5).start()
>>> os.environ.update(aws.env()); ids = aws.bootstrap()
>>> aws.stop()
"""

from tools.fakeaws.local import LocalAWS

__all__ = ["LocalAWS"]
