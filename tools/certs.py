"""A throw-away certificate authority for local TLS services.

``make_ca(directory)`` writes a CA plus server and client certificates (PEM,
SAN ``IP:127.0.0.1`` and ``DNS:localhost``) and returns their paths.  Java
services (ZooKeeper) additionally need PKCS12 key/trust stores, made with
``make_java_stores``, which shells out to ``keytool`` because Java only trusts
certificates in a PKCS12 store that carry its own trust attribute.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

STORE_PASSWORD = "nodepool-test"


@dataclass(frozen=True)
class CertSet:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: str, key) -> None:
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _write_cert(path: str, cert: x509.Certificate) -> None:
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _issue(ca_key, ca_cert, common_name: str, usage) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def make_ca(directory: str) -> CertSet:
    """Create CA, server and client certificates under ``directory``."""
    os.makedirs(directory, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("nodepool test CA"))
        .issuer_name(_name("nodepool test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                       critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = CertSet(*(os.path.join(directory, n) for n in (
        "ca.pem", "server.pem", "server.key", "client.pem", "client.key")))
    _write_cert(paths.ca, ca_cert)
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    for cert_path, key_path, cn in ((paths.server_cert, paths.server_key,
                                     "localhost"),
                                    (paths.client_cert, paths.client_key,
                                     "nodepool-client")):
        key, cert = _issue(ca_key, ca_cert, cn, both)
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
    return paths


def make_java_stores(certs: CertSet, directory: str) -> tuple[str, str]:
    """Return (keystore, truststore) PKCS12 paths for a Java server."""
    keystore = os.path.join(directory, "keystore.p12")
    truststore = os.path.join(directory, "truststore.p12")
    with open(certs.server_key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    with open(certs.server_cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(keystore, "wb") as f:
        f.write(pkcs12.serialize_key_and_certificates(
            b"server", key, cert, None,
            serialization.BestAvailableEncryption(STORE_PASSWORD.encode())))
    if os.path.exists(truststore):
        os.unlink(truststore)
    subprocess.run(
        ["keytool", "-importcert", "-noprompt", "-storetype", "PKCS12",
         "-keystore", truststore, "-storepass", STORE_PASSWORD,
         "-alias", "ca", "-file", certs.ca],
        check=True, capture_output=True)
    return keystore, truststore
