"""The AWS driver (``driver: aws``): see ``adapter`` for what runs where.

Modules: ``adapter`` (AwsAdapter), ``api`` (clients, limiters, retries),
``errors`` (EC2 codes → framework exceptions), ``params`` (RunInstances
parameters and tags), ``create`` and ``batchcreate`` (RunInstances, single
and batched), ``batchtags`` (node ↔ instance mapping carried in tags),
``tagger`` (late per-node tags), ``delete`` (batched TerminateInstances),
``describe`` (the instance watcher and state table), ``quota`` (Service
Quotas and instance types), ``images`` (AMI resolution).
"""
