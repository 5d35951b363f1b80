"""Consortium key material: a CA, the coordinator's TLS certificate, per-site node keys.

Flower 1.41 needs three kinds of files for a TLS + SuperNode-authenticated deployment:

* **Consortium CA** (``ca.crt`` / ``ca.key``): signs the coordinator certificate. Every site
  gets ``ca.crt`` (``flower-supernode --root-certificates ca.crt``); ``ca.key`` stays offline
  with the consortium administrator.
* **Coordinator (SuperLink) TLS certificate** (``server.crt`` / ``server.key``), signed by the
  CA, whose subjectAltName lists every hostname/IP the sites dial
  (``flower-superlink --ssl-ca-certfile ca.crt --ssl-certfile server.crt
  --ssl-keyfile server.key``). Python's TLS checks the SAN, so ``127.0.0.1`` must be listed as
  an IP entry for loopback tests.
* **Node key pair per site** (``node.key`` / ``node.pub``): an ECDSA key on a NIST curve
  (P-384 here) in **OpenSSH** format, exactly what Flower 1.41 loads:
  ``flower-supernode --auth-supernode-private-key node.key`` reads it with
  ``load_ssh_private_key`` (unencrypted, must be EC), and ``flwr supernode register node.pub
  CONNECTION`` reads ``ecdsa-sha2-nistp384 AAAA... comment`` with ``load_ssh_public_key``
  and refuses non-NIST curves. The SuperLink runs with ``--enable-supernode-auth``; a node
  whose public key was not registered through the Control API is refused at activation.
  (``--auth-list-public-keys`` CSVs are no longer supported in 1.41.)

Private keys are created with mode 0600 and are never overwritten unless ``force=True``.

Command line (``python -m fedcondense.deploy.pki --help``)::

    python -m fedcondense.deploy.pki init --out pki/ --host coordinator.example.org \\
        --host 127.0.0.1 --site hospital-a --site hospital-b
    python -m fedcondense.deploy.pki node --out pki/sites/hospital-c --site hospital-c
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..protocol.errors import FedcondenseError

CURVE = ec.SECP384R1
CA_DAYS = 3650
SERVER_DAYS = 825
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclass(frozen=True)
class CAFiles:
    """Paths of the consortium CA."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ServerFiles:
    """Paths of the coordinator TLS certificate and key (plus the CA it chains to)."""

    cert: Path
    key: Path
    ca_cert: Path


@dataclass(frozen=True)
class NodeKeyFiles:
    """Paths of one site's SuperNode authentication key pair."""

    private_key: Path
    public_key: Path


# --------------------------------------------------------------------------- file helpers
def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write ``data`` to ``path`` with ``mode``, refusing to overwrite unless ``force``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if not force:
            raise FedcondenseError(f"{path}: already exists; keep it, or pass --force to "
                                   f"replace it (a replaced key must be redistributed).")
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)  # umask may have narrowed the mode given to os.open


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVE())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def load_certificate(path: str | Path) -> x509.Certificate:
    """Read a PEM certificate, raising a one-line error when it is not one."""
    p = Path(path)
    try:
        return x509.load_pem_x509_certificate(p.read_bytes())
    except (OSError, ValueError) as exc:
        raise FedcondenseError(f"{p}: not a readable PEM certificate ({exc}).") from None


def _load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise FedcondenseError(f"{path}: not a readable unencrypted PEM key ({exc}).") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FedcondenseError(f"{path}: expected an EC private key.")
    return key


# --------------------------------------------------------------------------- CA
def create_ca(out_dir: str | Path, *, common_name: str = "fedcondense consortium CA",
              days: int = CA_DAYS, force: bool = False) -> CAFiles:
    """Create the consortium CA as ``out_dir/ca.crt`` and ``out_dir/ca.key`` (0600).

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created if missing).
    common_name : str
        Subject CN of the CA.
    days : int
        Validity in days.
    force : bool
        Replace existing files.

    Returns
    -------
    CAFiles
    """
    out = Path(out_dir)
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedcondense consortium")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA384())
    )
    files = CAFiles(out / "ca.crt", out / "ca.key")
    _write(files.key, _pem_key(key), PRIVATE_MODE, force)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE, force)
    return files


# --------------------------------------------------------------------------- server
def _san_entries(hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for h in hosts:
        h = h.strip()
        if not h:
            raise FedcondenseError("an empty --host was given; list hostnames or IP addresses.")
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            entries.append(x509.DNSName(h))
    return entries


def issue_server_certificate(ca: CAFiles, out_dir: str | Path, hosts: Sequence[str], *,
                             days: int = SERVER_DAYS, force: bool = False) -> ServerFiles:
    """Issue the coordinator (SuperLink) TLS certificate for ``hosts``, signed by ``ca``.

    Writes ``out_dir/server.crt``, ``out_dir/server.key`` (0600) and a copy of ``ca.crt``
    (the SuperLink's ``--ssl-ca-certfile``).

    Parameters
    ----------
    ca : CAFiles
        The consortium CA (its key must be readable).
    out_dir : str or Path
        Folder to write into.
    hosts : sequence of str
        Hostnames and/or IP addresses the sites use to reach the coordinator; each becomes
        a subjectAltName entry (IP addresses as IP entries). The first is the subject CN.
    days : int
        Validity in days (825 keeps within common client limits).
    force : bool
        Replace existing files.

    Returns
    -------
    ServerFiles
    """
    if not hosts:
        raise FedcondenseError("give at least one --host (hostname or IP of the coordinator).")
    sans = _san_entries(hosts)
    ca_cert = load_certificate(ca.cert)
    ca_key = _load_private_key(ca.key)
    key = _new_key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    out = Path(out_dir)
    files = ServerFiles(out / "server.crt", out / "server.key", out / "ca.crt")
    _write(files.key, _pem_key(key), PRIVATE_MODE, force)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE, force)
    if files.ca_cert.resolve() != Path(ca.cert).resolve():
        _write(files.ca_cert, Path(ca.cert).read_bytes(), PUBLIC_MODE, True)
    return files


# --------------------------------------------------------------------------- node keys
def create_node_keypair(out_dir: str | Path, site_id: str, *,
                        force: bool = False) -> NodeKeyFiles:
    """Create a site's SuperNode authentication key pair in Flower's expected format.

    ``out_dir/node.key`` (0600): unencrypted OpenSSH private key, ECDSA P-384 — pass it to
    ``flower-supernode --auth-supernode-private-key``. ``out_dir/node.pub`` (0644):
    ``ecdsa-sha2-nistp384 AAAA... <site_id>`` — the coordinator registers it with
    ``flwr supernode register node.pub CONNECTION``.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into.
    site_id : str
        Used as the public key's comment, so a key file names its site.
    force : bool
        Replace existing files (the old public key must then be unregistered).

    Returns
    -------
    NodeKeyFiles
    """
    if not site_id or any(c.isspace() for c in site_id):
        raise FedcondenseError(f"site id {site_id!r}: give a non-empty id without spaces.")
    key = _new_key()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    out = Path(out_dir)
    files = NodeKeyFiles(out / "node.key", out / "node.pub")
    _write(files.private_key, private, PRIVATE_MODE, force)
    _write(files.public_key, public + f" {site_id}\n".encode(), PUBLIC_MODE, force)
    return files


# --------------------------------------------------------------------------- whole layout
@dataclass(frozen=True)
class ConsortiumPKI:
    """Everything :func:`init_consortium` wrote."""

    ca: CAFiles
    server: ServerFiles
    sites: dict[str, NodeKeyFiles]


def init_consortium(out_dir: str | Path, hosts: Sequence[str], sites: Sequence[str], *,
                    force: bool = False) -> ConsortiumPKI:
    """Create the standard layout under ``out_dir``.

    ``ca/ca.{crt,key}`` (keep ``ca.key`` offline), ``superlink/{server.crt,server.key,ca.crt}``
    (copy to the coordinator), ``sites/<id>/{node.key,node.pub,ca.crt}`` (give each site its
    own folder; send every ``node.pub`` to the coordinator for registration).
    """
    if len(set(sites)) != len(sites):
        raise FedcondenseError("site ids must be unique.")
    root = Path(out_dir)
    ca = create_ca(root / "ca", force=force)
    server = issue_server_certificate(ca, root / "superlink", hosts, force=force)
    keys: dict[str, NodeKeyFiles] = {}
    for site in sites:
        keys[site] = create_node_keypair(root / "sites" / site, site, force=force)
        _write(root / "sites" / site / "ca.crt", ca.cert.read_bytes(), PUBLIC_MODE, True)
    return ConsortiumPKI(ca, server, keys)


# --------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fedcondense.deploy.pki",
                                description="Create consortium TLS and SuperNode keys.")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("init", help="CA + coordinator certificate + node keys for sites.")
    i.add_argument("--out", required=True, type=Path)
    i.add_argument("--host", action="append", required=True,
                   help="Coordinator hostname or IP (repeat).")
    i.add_argument("--site", action="append", default=[], help="Site id (repeat).")
    c = sub.add_parser("ca", help="Only the consortium CA.")
    c.add_argument("--out", required=True, type=Path)
    s = sub.add_parser("server", help="A coordinator certificate from an existing CA.")
    s.add_argument("--ca", required=True, type=Path, help="Folder holding ca.crt and ca.key.")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--host", action="append", required=True)
    n = sub.add_parser("node", help="One site's SuperNode key pair.")
    n.add_argument("--out", required=True, type=Path)
    n.add_argument("--site", required=True)
    for sp in (i, c, s, n):
        sp.add_argument("--force", action="store_true", help="Replace existing files.")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fedcondense.deploy.pki``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "init":
            pki = init_consortium(args.out, args.host, args.site, force=args.force)
            print(f"CA:        {pki.ca.cert} (keep {pki.ca.key} offline)")
            print(f"SuperLink: {pki.server.cert}, {pki.server.key}, {pki.server.ca_cert}")
            for site, f in pki.sites.items():
                print(f"site {site}: {f.private_key} (stays at the site), {f.public_key} "
                      f"(register on the coordinator)")
        elif args.cmd == "ca":
            ca = create_ca(args.out, force=args.force)
            print(f"wrote {ca.cert} and {ca.key}")
        elif args.cmd == "server":
            ca = CAFiles(args.ca / "ca.crt", args.ca / "ca.key")
            sf = issue_server_certificate(ca, args.out, args.host, force=args.force)
            print(f"wrote {sf.cert}, {sf.key} and {sf.ca_cert}")
        else:
            nf = create_node_keypair(args.out, args.site, force=args.force)
            print(f"wrote {nf.private_key} and {nf.public_key}")
    except FedcondenseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
