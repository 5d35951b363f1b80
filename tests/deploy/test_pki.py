"""Consortium PKI: chain, SAN, permissions, and Flower 1.41 accepting the node key format."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509

from fedcondense.deploy import pki, pki_checks
from fedcondense.protocol.errors import FedcondenseError


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    return pki.init_consortium(root, ["127.0.0.1", "localhost"], ["hospital-a", "hospital-b"])


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_chain_verifies_for_listed_hosts_only(layout):
    for host in ("127.0.0.1", "localhost"):
        pki_checks.verify_server_certificate(layout.ca.cert, layout.server.cert, host)
    with pytest.raises(FedcondenseError, match="subjectAltName"):
        pki_checks.verify_server_certificate(layout.ca.cert, layout.server.cert, "example.org")
    other = pki.create_ca(layout.ca.cert.parent.parent / "other-ca")
    with pytest.raises(FedcondenseError, match="does not verify"):
        pki_checks.verify_server_certificate(other.cert, layout.server.cert, "127.0.0.1")


def test_san_holds_loopback_ip_and_name(layout):
    cert = pki.load_certificate(layout.server.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    ca = pki.load_certificate(layout.ca.cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_private_keys_are_0600_public_files_0644(layout):
    private = [layout.ca.key, layout.server.key] + [k.private_key for k in layout.sites.values()]
    public = [layout.ca.cert, layout.server.cert, layout.server.ca_cert] + \
        [k.public_key for k in layout.sites.values()]
    assert all(_mode(p) == 0o600 for p in private)
    assert all(_mode(p) == 0o644 for p in public)
    assert (layout.ca.cert.parent.parent / "sites" / "hospital-a" / "ca.crt").is_file()


def test_node_keys_load_with_flowers_own_loaders(layout):
    from flwr.cli.supernode.register import try_load_public_key
    from flwr.supernode.cli.flower_supernode import _try_setup_client_authentication

    keys = layout.sites["hospital-a"]
    assert keys.public_key.read_text().startswith("ecdsa-sha2-nistp384 ")
    assert keys.public_key.read_text().rstrip().endswith(" hospital-a")
    pem = try_load_public_key(keys.public_key)  # what `flwr supernode register` sends
    priv, pub = _try_setup_client_authentication(argparse.Namespace(
        auth_supernode_private_key=str(keys.private_key), auth_supernode_public_key=None))
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes
    assert public_key_to_bytes(pub) == pem


def test_tls_handshake_with_python_ssl(layout):
    """A real TLS handshake on loopback: what the SuperNode's HTTPS client does."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(layout.server.cert, layout.server.key)
    client_ctx = ssl.create_default_context(cafile=str(layout.ca.cert))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(5)
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=5) as raw:
            with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.recv(2) == b"ok"
        thread.join(5)
        assert not errors


def test_no_silent_overwrite_and_force(tmp_path):
    first = pki.create_node_keypair(tmp_path, "s1")
    before = first.private_key.read_bytes()
    with pytest.raises(FedcondenseError, match="already exists"):
        pki.create_node_keypair(tmp_path, "s1")
    pki.create_node_keypair(tmp_path, "s1", force=True)
    assert first.private_key.read_bytes() != before and _mode(first.private_key) == 0o600
    with pytest.raises(FedcondenseError, match="without spaces"):
        pki.create_node_keypair(tmp_path / "x", "bad id")


def test_module_cli(tmp_path, capsys):
    assert pki.main(["init", "--out", str(tmp_path / "p"), "--host", "127.0.0.1",
                     "--site", "a"]) == 0
    assert "keep" in capsys.readouterr().out
    assert pki.main(["node", "--out", str(tmp_path / "p" / "sites" / "a"), "--site", "a"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert pki.main(["server", "--ca", str(tmp_path / "p" / "ca"), "--out", str(tmp_path / "s2"),
                     "--host", "coordinator.example.org"]) == 0
    pki_checks.verify_server_certificate(tmp_path / "p" / "ca" / "ca.crt", tmp_path / "s2" / "server.crt",
                                  "coordinator.example.org")


def test_node_public_keys_load_as_flower_registers_them(layout, tmp_path):
    for keys in layout.sites.values():
        key = pki_checks.load_node_public_key(keys.public_key)
        assert key.curve.name == "secp384r1"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    (tmp_path / "rsa.pub").write_bytes(rsa_pub.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
    with pytest.raises(FedcondenseError, match="ECDSA key on a NIST curve"):
        pki_checks.load_node_public_key(tmp_path / "rsa.pub")
    (tmp_path / "junk.pub").write_text("ssh-ed25519 not-base64\n")
    with pytest.raises(FedcondenseError, match="not an OpenSSH public key"):
        pki_checks.load_node_public_key(tmp_path / "junk.pub")
