"""The AWS driver (``driver: aws``): see ``adapter`` for what runs where.

Modules: ``adapter`` (AwsAdapter), ``api`` (clients, limiters, retries),
``errors`` (EC2 codes → framework exceptions), ``params`` (RunInstances
parameters and tags), ``create`` (RunInstances, single and batched through
the framework ``Batcher``), ``batchtags`` (node ↔ instance mapping carried in tags),
``tagger`` (late per-node tags), ``delete`` (batched TerminateInstances),
``describe`` (the instance watcher and state table), ``quota`` (Service
Quotas and instance types), ``images`` (AMI resolution).
"""
