"""TLS on the client port: TLS clients work, plain and untrusting ones are refused, mutual TLS."""

from __future__ import annotations

import ssl

import pytest
import trio
import trustme
from support import running_broadcaster

from broadcaster import tls
from broadcaster.client import ConnectionLost, ServerError, connect
from protocol import PROTOCOL_VERSION, encode_frame


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def pki(tmp_path, ca):
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "server.pem",
        "key": tmp_path / "server.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server_cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server_cert.private_key_pem.write_to_path(str(files["key"]))
    client_cert = ca.issue_cert("artist@example.org")
    files["client_cert"] = tmp_path / "client.pem"
    files["client_key"] = tmp_path / "client.key"
    client_cert.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client_cert.private_key_pem.write_to_path(str(files["client_key"]))
    return files


async def test_tls_clients_work(tmp_path, pki):
    async with running_broadcaster(tmp_path / "d", tls_cert=pki["cert"], tls_key=pki["key"]) as (host, port):
        context = tls.client_context(ca=pki["ca"])
        async with connect(host, port, name="a", ssl_context=context) as a:
            async with connect(host, port, name="b", ssl_context=context) as b:
                await a.create_room("secure", keep_open=True)
                await a.join("secure")
                await b.join("secure")
                seq = await a.set("k", b"v" * 100_000)
                with trio.fail_after(5):
                    while b.seq < seq:
                        await b.receive()
                assert b.state == {"k": b"v" * 100_000}


async def test_plain_clients_are_refused_where_tls_is_required(tmp_path, pki):
    async with running_broadcaster(tmp_path / "d", tls_cert=pki["cert"], tls_key=pki["key"]) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        hello = encode_frame({"type": "hello", "protocol": PROTOCOL_VERSION, "client_name": "plain"})
        await stream.send_all(hello)
        received = b""
        with trio.fail_after(5):
            try:
                while chunk := await stream.receive_some(65536):
                    received += chunk
            except trio.BrokenResourceError:
                pass
        await stream.aclose()
        assert b"welcome" not in received  # closed without ever speaking the protocol
        with pytest.raises((ConnectionLost, ServerError, trio.BrokenResourceError, OSError)):
            async with connect(host, port, name="plain"):
                pass
        # And the server still serves TLS clients afterwards.
        async with connect(host, port, ssl_context=tls.client_context(ca=pki["ca"])) as ok:
            assert await ok.list_rooms() == []


async def test_a_client_that_does_not_trust_the_certificate_refuses_it(tmp_path, pki):
    async with running_broadcaster(tmp_path / "d", tls_cert=pki["cert"], tls_key=pki["key"]) as (host, port):
        other_ca = trustme.CA()
        untrusting = ssl.create_default_context()
        other_ca.configure_trust(untrusting)
        with pytest.raises(ConnectionLost, match="TLS handshake"):
            async with connect(host, port, ssl_context=untrusting):
                pass


async def test_mutual_tls_requires_a_client_certificate(tmp_path, pki):
    settings = {"tls_cert": pki["cert"], "tls_key": pki["key"], "tls_client_ca": pki["ca"]}
    async with running_broadcaster(tmp_path / "d", **settings) as (host, port):
        with pytest.raises((ConnectionLost, ServerError)):
            async with connect(host, port, ssl_context=tls.client_context(ca=pki["ca"])) as anonymous:
                await anonymous.list_rooms()
        context = tls.client_context(ca=pki["ca"], cert=pki["client_cert"], key=pki["client_key"])
        async with connect(host, port, ssl_context=context) as known:
            assert await known.list_rooms() == []


def test_contexts_require_tls_1_2_and_verify(pki):
    server = tls.server_context(pki["cert"], pki["key"])
    client = tls.client_context(ca=pki["ca"])
    assert server.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    assert tls.server_context(pki["cert"], pki["key"], client_ca=pki["ca"]).verify_mode == ssl.CERT_REQUIRED
