"""The certificate of Asterisk's TLS transport: the operator's, or one made for development.

Asterisk reads files inside its root, so the files are placed in the instance's `keys/` folder
(private, mode 0600). Without an operator certificate, a self-signed one is generated once
(cryptography) for loopback, this machine's SIP addresses and `localhost`: far ends that check
certificates will refuse it, which is what a development certificate should get.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.atomic_file import write_atomically

CERT_NAME = "voxcast.crt"
KEY_NAME = "voxcast.key"
FAR_END_CA_NAME = "far-end-ca.pem"
DEV_CERT_DAYS = 825


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Host paths of the files the TLS transport uses (the CA list only when given)."""

    cert: Path
    key: Path
    far_end_ca: Path | None


def _development_certificate(addresses: list[str]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voxcast development")])
    now = datetime.datetime.now(datetime.UTC)
    alternative_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=DEV_CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def place_tls_files(keys_dir: Path, *, cert: Path | None, key: Path | None,
                    far_end_ca: Path | None, addresses: list[str]) -> TlsFiles:
    """Copy the operator's files into `keys_dir`, or make a development pair there once."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = keys_dir / CERT_NAME, keys_dir / KEY_NAME
    if cert is not None and key is not None:
        write_atomically(cert_path, cert.read_bytes(), mode=0o600)
        write_atomically(key_path, key.read_bytes(), mode=0o600)
    elif not (cert_path.is_file() and key_path.is_file()):
        cert_pem, key_pem = _development_certificate(
            [a for a in addresses if not ipaddress.ip_address(a).is_unspecified])
        write_atomically(key_path, key_pem, mode=0o600)
        write_atomically(cert_path, cert_pem, mode=0o600)
    ca_path = None
    if far_end_ca is not None:
        ca_path = keys_dir / FAR_END_CA_NAME
        write_atomically(ca_path, far_end_ca.read_bytes(), mode=0o600)
    return TlsFiles(cert_path, key_path, ca_path)
