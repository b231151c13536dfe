"""What upstream Nodepool's nodescan records for a test sshd's host keys.

Upstream makes one SSH key exchange per entry of paramiko's
``SecurityOptions.key_types``, in that order, offering only that one
host-key algorithm, and appends every key that comes back.  So an RSA key
(named ``ssh-rsa``) is recorded once per RSA signature algorithm.  The
expected list is derived here from paramiko and the server's ``.pub`` files,
never written down, so the tests follow paramiko's list if it changes.
"""

from __future__ import annotations

import socket

import paramiko


def paramiko_key_types() -> tuple[str, ...]:
    """The host-key algorithms upstream's nodescan walks, in its order."""
    with socket.socket() as sock:
        transport = paramiko.Transport(sock)
        try:
            return tuple(paramiko.transport.SecurityOptions(
                transport).key_types)
        finally:
            transport.close()


def negotiable(key: str, algorithm: str) -> bool:
    """Whether a host key ("<name> <base64>") can sign with ``algorithm``.

    A key's own name is always one; an RSA key also signs with the SHA-2
    algorithms (RFC 8332).
    """
    name = key.split()[0]
    return algorithm == name or (
        name == "ssh-rsa" and algorithm in ("rsa-sha2-256", "rsa-sha2-512"))


def upstream_keys(server) -> list[str]:
    """Upstream's nodescan result for ``server`` (a ``tools.sshd`` server)."""
    return [key for algorithm in paramiko_key_types()
            for key in server.host_keys if negotiable(key, algorithm)]
