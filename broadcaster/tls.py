"""SSL contexts from certificate, key and CA files, for the client port and for node-to-node links.

    server_context(cert, key)                       # TLS server; clients need not show a certificate
    server_context(cert, key, client_ca=ca)         # mutual TLS: clients must show a cert signed by ca
    client_context(ca=ca)                           # verify the server against ca (default: system CAs)
    client_context(ca=ca, cert=cert, key=key)       # and show our own certificate (mutual TLS)

    pinned_client_context()                         # no CA: the caller checks the certificate's pin
    write_self_signed(cert, key, names)             # what `blendsync init` gives a new server

Both sides require TLS 1.2 or newer. Hostname checking stays on in client contexts unless the caller
turns it off explicitly (node links that name peers by address use certificates with IP SANs instead).

A pin is ``sha256:`` and the 64 hex digits of the SHA-256 of the certificate's DER bytes (what
``openssl x509 -noout -fingerprint -sha256`` shows, without the colons). It replaces a CA for a
self-signed server: the client accepts exactly that certificate, checked before it sends its token.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Any

from protocol.invite import pin_of, pin_problem

StrPath = str | Path


def server_context(cert: StrPath, key: StrPath, *, client_ca: StrPath | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    *,
    ca: StrPath | None = None,
    cert: StrPath | None = None,
    key: StrPath | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key is not None else None)
    return context


class PinMismatch(ssl.SSLError):
    """The server showed a certificate other than the pinned one."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "the server's certificate is not the pinned one"


def pinned_client_context() -> ssl.SSLContext:
    """A TLS 1.2+ client context accepting any certificate: only with ``check_pin`` after the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


der_pin = pin_of


def certificate_pin(cert: StrPath) -> str:
    """The pin of the first certificate in a PEM file."""
    pem = Path(cert).read_text(encoding="ascii")
    begin = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    return der_pin(ssl.PEM_cert_to_DER_cert(pem[begin:end]))


def check_pin(connection: Any, pin: str) -> None:
    """Raise PinMismatch unless the peer's certificate has this pin.

    ``connection``: anything with ssl's ``getpeercert`` after the handshake (an SSLSocket, trio's SSLStream).
    """
    problem = pin_problem(connection.getpeercert(binary_form=True), pin)
    if problem is not None:
        raise PinMismatch(problem)


def write_self_signed(cert: StrPath, key: StrPath, names: list[str], *, days: int = 3650) -> None:
    """A new EC P-256 key (mode 0600) and a self-signed certificate for ``names`` (DNS names or IPs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    private_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "blendsync")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    key_bytes = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_new(Path(key), key_bytes, 0o600)
    _write_new(Path(cert), certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet (O_EXCL: never replaces a key or certificate)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
