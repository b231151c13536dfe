"""Development tools: local services (ZooKeeper, clouds), demo and benchmarks.

Nothing in the ``nodepool`` package imports from here; tests, the demo and the
benchmarks do.
"""
