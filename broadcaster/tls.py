"""SSL contexts from certificate, key and CA files, for the client port and for node-to-node links.

    server_context(cert, key)                       # TLS server; clients need not show a certificate
    server_context(cert, key, client_ca=ca)         # mutual TLS: clients must show a cert signed by ca
    client_context(ca=ca)                           # verify the server against ca (default: system CAs)
    client_context(ca=ca, cert=cert, key=key)       # and show our own certificate (mutual TLS)

Both sides require TLS 1.2 or newer. Hostname checking stays on in client contexts unless the caller
turns it off explicitly (node links that name peers by address use certificates with IP SANs instead).
"""

from __future__ import annotations

import ssl
from pathlib import Path

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
