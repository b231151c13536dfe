"""Knobs and records of the local OpenStack.

:class:`Settings` holds every injectable behaviour (latencies, build time,
quota limits, addresses).  It can be changed while the server runs, from
Python (``LocalOpenStack.configure``) or over HTTP (``POST /_fake/config``);
an unknown flag is refused with ``ValueError`` (HTTP 400) rather than
silently ignored, so a typo in a benchmark does not measure the default.

:class:`CreateFailure` scripts what the next ``POST servers`` calls do
instead of succeeding: answer an HTTP error, answer Nova's quota 403, or
accept the request and let the servers end in ERROR with a fault.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Settings", "CreateFailure", "ServerRecord", "FAILURE_KINDS"]

FAILURE_KINDS = ("http", "quota", "error")


@dataclass
class Settings:
    # Seconds the POST servers call itself takes; concurrent calls overlap.
    create_latency: float = 0.0
    # Seconds a server stays in BUILD before it turns ACTIVE (or ERROR).
    build_time: float = 0.0
    # Seconds the DELETE servers/{id} call takes.
    delete_latency: float = 0.0
    # Seconds a deleted server stays visible (task_state "deleting") before
    # it is gone (404).
    delete_time: float = 0.0
    # Extra seconds every authenticated call takes (a slow cloud).
    api_latency: float = 0.0
    # When set, servers get this address as accessIPv4 and as their fixed
    # IP, so a keyscan of "the server" reaches a local sshd.  None gives
    # realistic unreachable 10.x addresses.
    server_ip: str | None = None
    # Nova absolute limits; -1 means unlimited, as in Nova.
    max_instances: int = 100
    max_cores: int = 400
    max_ram: int = 1024000
    # Cinder absolute limits.
    max_volumes: int = 100
    max_volume_gb: int = 5000
    # Refuse a create whose key_name is no keypair (400, as Nova does).
    # Off by default so callers need not create keypairs first.
    require_keypair: bool = False
    # Ports of deleted servers stay behind DOWN (a Neutron leak).
    leak_ports_on_delete: bool = False
    # Lifetime of issued Keystone tokens in seconds.
    token_ttl: float = 3600.0
    # Console text; "{name}" and "{id}" are replaced per server.
    console_output: str = ("[    0.000000] Linux version 6.1.0 (fake)\n"
                           "{name} login: \n")

    def update(self, **flags: Any) -> None:
        known = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(flags) - set(known))
        if unknown:
            raise ValueError(f"unknown fake OpenStack flag(s): {unknown}")
        for name, value in flags.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CreateFailure:
    """What one upcoming ``POST servers`` does instead of succeeding.

    kind "http": answer ``status`` (default 500) with a computeFault.
    kind "quota": answer Nova's 403 "Quota exceeded for instances".
    kind "error": accept, then the servers end in ERROR with
    ``fault = {"message": message, "code": code}`` after the build time.
    """
    kind: str
    status: int = 500
    message: str | None = None
    code: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAILURE_KINDS:
            raise ValueError(f"failure kind must be one of {FAILURE_KINDS}")


@dataclass
class ServerRecord:
    """One Nova server; its wire form is built by ``nova.server_body``."""
    id: str
    name: str
    project_id: str
    user_id: str
    flavor: dict[str, Any]
    image_id: str                    # "" when booted from volume
    availability_zone: str
    host: str
    created: str
    ready_at: float                  # clock time BUILD ends
    reservation_id: str
    metadata: dict[str, str] = field(default_factory=dict)
    key_name: str | None = None
    user_data: str | None = None
    config_drive: bool = False
    port_ids: list[str] = field(default_factory=list)
    # (volume id, delete_on_termination)
    volumes: list[tuple[str, bool]] = field(default_factory=list)
    # Outcome once BUILD ends: "ACTIVE" or "ERROR" (with fault).
    outcome: str = "ACTIVE"
    fault: dict[str, Any] | None = None
    status: str = "BUILD"
    task_state: str | None = "spawning"
    updated: str = ""
    launched_at: str | None = None
    access_ipv4: str = ""
    gone_at: float | None = None     # set by delete; gone at this time
