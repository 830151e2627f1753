"""``blendsync init``: a complete, loadable server setup; running it again changes nothing."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from broadcaster.auth import read_users
from broadcaster.config import load_config
from broadcaster.tls import certificate_pin

REPO = Path(__file__).resolve().parents[2]


def blendsync(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broadcaster.cli", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_init_writes_a_config_serve_accepts_with_secrets_kept_private(tmp_path):
    root = tmp_path / "srv"
    done = blendsync("init", "--data-dir", str(root), "--host", "127.0.0.1", "--port", "12999")
    assert done.returncode == 0, done.stderr
    config = load_config(root / "blendsync.toml")
    config.check()
    assert (config.host, config.port) == ("127.0.0.1", 12999)
    assert (config.http_host, config.http_port) == ("127.0.0.1", 12880)  # serves the add-on
    assert "http://127.0.0.1:12880/addon/blendsync.zip" in done.stdout
    assert config.data_dir == root / "rooms" and config.data_dir.is_dir()
    assert [(u["name"], u["role"]) for u in read_users(config.tokens_file)] == [("admin", "admin")]
    assert certificate_pin(config.tls_cert).startswith("sha256:")
    for secret in (config.tokens_file, config.tls_key):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    token_line = next(line for line in done.stdout.splitlines() if line.startswith("admin token"))
    assert "bst_" in token_line
    assert f"blendsync serve --config {root / 'blendsync.toml'}" in done.stdout


def test_running_init_again_replaces_nothing(tmp_path):
    root = tmp_path / "srv"
    assert blendsync("init", "--data-dir", str(root)).returncode == 0
    (root / "rooms" / "marker").write_bytes(b"data")
    before = snapshot(root)
    again = blendsync("init", "--data-dir", str(root), "--port", "1234", "--host", "127.0.0.2")
    assert again.returncode == 0, again.stderr
    assert snapshot(root) == before
    assert "admin token" not in again.stdout  # the admin exists: no new token
    assert "kept" in again.stderr


def test_half_a_certificate_pair_is_refused_not_replaced(tmp_path):
    root = tmp_path / "srv"
    assert blendsync("init", "--data-dir", str(root)).returncode == 0
    (root / "tls" / "server.pem").unlink()
    key = (root / "tls" / "server.key").read_bytes()
    done = blendsync("init", "--data-dir", str(root))
    assert done.returncode == 2 and "only one of" in done.stderr
    assert (root / "tls" / "server.key").read_bytes() == key
    assert not (root / "tls" / "server.pem").exists()


def test_an_existing_certificate_is_used_instead_of_a_self_signed_one(tmp_path):
    ca = trustme.CA()
    issued = ca.issue_cert("blendsync.studio.lan")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    root = tmp_path / "srv"
    done = blendsync("init", "--data-dir", str(root), "--tls-cert", str(cert), "--tls-key", str(key))
    assert done.returncode == 0, done.stderr
    config = load_config(root / "blendsync.toml")
    assert (config.tls_cert, config.tls_key) == (cert, key)
    assert not (root / "tls").exists()
    assert blendsync("init", "--data-dir", str(root / "x"), "--tls-cert", str(cert)).returncode == 2


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_ports_out_of_range_are_refused(tmp_path, port):
    done = blendsync("init", "--data-dir", str(tmp_path / "srv"), "--port", port)
    assert done.returncode == 2 and "--port" in done.stderr
    assert not (tmp_path / "srv").exists()


@pytest.mark.parametrize("port", ["65536", "-1", "12800"])
def test_http_ports_out_of_range_or_the_client_port_are_refused(tmp_path, port):
    done = blendsync("init", "--data-dir", str(tmp_path / "srv"), "--http-port", port)
    assert done.returncode == 2 and "--http-port" in done.stderr
    assert not (tmp_path / "srv").exists()


def test_http_port_0_writes_none(tmp_path):
    root = tmp_path / "srv"
    done = blendsync("init", "--data-dir", str(root), "--http-port", "0")
    assert done.returncode == 0, done.stderr
    assert load_config(root / "blendsync.toml").http_port is None
    assert "/addon/" not in done.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_systemd_unit_verifies(tmp_path):
    root = tmp_path / "with space"
    assert blendsync("init", "--data-dir", str(root)).returncode == 0
    unit = root / "blendsync.service"
    text = unit.read_text()
    assert "serve --config" in text and f'"{root / "blendsync.toml"}"' in text
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
