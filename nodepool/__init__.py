"""nodepool: a node launcher for CI systems (drop-in for upstream Nodepool)."""
