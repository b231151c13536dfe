"""The single place that names the package version."""

__version__ = "0.1.0"
