"""The Azure driver (``driver: azure``), on azure-mgmt-compute/-network.

Modules: ``adapter`` (AzureAdapter: wiring, instances, quota, leaks),
``create`` / ``delete`` (the state machines), ``api`` (rate limiting,
retries), ``errors`` (SDK errors → framework exceptions), ``auth``
(credentials file, clients), ``params`` (names, tags, request bodies),
``listing`` (shared cached listings the machines poll), ``images``
(image references), ``quota`` (VM sizes and usages), ``leaks`` (leaked
NICs, public IPs and disks).
"""
