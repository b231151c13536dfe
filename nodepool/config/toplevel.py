"""Schemas of the top-level keys (config.md §2) and of the secure file (§1).

Provider entries are only checked for being mappings here; each one is then
validated against its driver's schema (``nodepool.config.drivers``) so the
error paths still start at ``providers[<n>]``.

Top-level ``diskimages`` are builder images: the launcher uses only a few of
their keys, but every key upstream's builder knows is accepted (and any other
is an error) so one file can serve both the builder and the launcher.
"""

from __future__ import annotations

import voluptuous as vol
from voluptuous import Required

from nodepool.config.validators import (
    Int, ListOf, Port, PositiveFloat, PositiveInt, Struct)

__all__ = ["TOP_LEVEL", "SECURE_KEYS", "ZK_SERVER", "ZK_TLS",
           "TOP_LEVEL_LOADER_ONLY"]

ZK_SERVER = Struct({Required("host"): str, "port": Port, "chroot": str})

ZK_TLS = Struct({Required("cert"): str, Required("key"): str,
                 Required("ca"): str})

LABEL = Struct({Required("name"): str, "min-ready": Int,
                "max-ready-age": Int})

WEBAPP = Struct({"port": Port, "listen_address": str})

# Any other key with an int value is a driver resource (e.g. an AWS quota
# code); the ``str: Int`` wildcard only applies to keys not listed.
TENANT_LIMIT = Struct({
    Required("tenant-name"): str,
    "max-servers": Int,
    "max-cores": Int,
    "max-ram": Int,
    "max-volumes": Int,
    "max-volume-gb": Int,
    str: Int,
})

DISKIMAGE = Struct({
    Required("name"): str,
    "abstract": bool,
    "parent": str,
    "username": str,
    "python-path": str,
    "shell-type": str,  # loader-only (config.md §2)
    # Builder-only keys, accepted and ignored by the launcher.
    "dib-cmd": str,
    "pause": bool,
    "elements": ListOf(str),
    "formats": ListOf(str),
    "keep-formats": ListOf(str),
    "delete-after-upload": bool,
    "release": vol.Any(str, Int, msg="expected str or int"),
    "rebuild-age": Int,
    "build-timeout": PositiveInt,
    "env-vars": {str: str},
    "metadata": dict,
})

TOP_LEVEL = Struct({
    "zookeeper-servers": ListOf(ZK_SERVER),
    "zookeeper-tls": ZK_TLS,
    "zookeeper-timeout": PositiveFloat,
    "labels": ListOf(LABEL),
    "providers": ListOf(dict),
    "diskimages": ListOf(DISKIMAGE),
    "webapp": WEBAPP,
    "max-hold-age": Int,
    "tenant-resource-limits": ListOf(TENANT_LIMIT),
    "elements-dir": str,
    "images-dir": str,
    "build-log-dir": str,
    "build-log-retention": Int,
})

TOP_LEVEL_LOADER_ONLY = (("diskimages", "*", "shell-type"),)

SECURE_DISKIMAGE = Struct({Required("name"): str,
                           Required("env-vars"): {str: str}})

# The secure file has no schema upstream: only these keys are read, each is
# checked on its own so that a bad one does not discard the good ones.
SECURE_KEYS = {
    "zookeeper-servers": ListOf(ZK_SERVER),
    "zookeeper-tls": ZK_TLS,
    "diskimages": ListOf(SECURE_DISKIMAGE),
}
