"""The driver framework and the registry that finds an adapter by name.

The launcher never imports a cloud SDK: it asks ``adapter_class(driver)``
and the adapter module (with its SDK) is imported only then.  Tests and
tools may ``register_adapter`` their own (e.g. the fake adapter).
"""

from __future__ import annotations

import importlib

_BUILTIN = {
    "aws": "nodepool.driver.aws.adapter:AwsAdapter",
    "openstack": "nodepool.driver.openstack.adapter:OpenStackAdapter",
    "azure": "nodepool.driver.azure.adapter:AzureAdapter",
    "static": "nodepool.driver.static.adapter:StaticAdapter",
    "fake": "nodepool.driver.fake:FakeAdapter",
}
_REGISTERED: dict[str, type] = {}


def register_adapter(driver: str, cls: type) -> None:
    """Use ``cls`` for providers with ``driver: <driver>`` (tests, tools)."""
    _REGISTERED[driver] = cls


def adapter_class(driver: str) -> type:
    """The adapter class for a driver name; ImportError names what's missing."""
    if driver in _REGISTERED:
        return _REGISTERED[driver]
    target = _BUILTIN.get(driver)
    if target is None:
        raise LookupError(f"no adapter for driver {driver!r}")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
