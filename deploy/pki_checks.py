"""Checks of the consortium's key material, as the TLS client and Flower will read it.

:func:`verify_server_certificate` runs the WebPKI-style verifier a site's TLS client uses on
the coordinator certificate; :func:`load_node_public_key` reads a site's ``node.pub`` the way
``flwr supernode register`` does. Both are what an operator (or a test) runs after
:mod:`fedcondense.deploy.pki` wrote the files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..protocol.errors import FedcondenseError
from .pki import load_certificate


def verify_server_certificate(ca_cert: str | Path, cert: str | Path, host: str) -> None:
    """Check that ``cert`` chains to ``ca_cert`` and is valid for ``host`` (TLS server use).

    Uses the same WebPKI-style verifier a TLS client would (``cryptography.x509.verification``).

    Raises
    ------
    FedcondenseError
        With the verifier's reason, when the certificate would be rejected.
    """
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    ca = load_certificate(ca_cert)
    leaf = load_certificate(cert)
    try:
        subject: x509.verification.Subject = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    now = dt.datetime.now(dt.timezone.utc)
    verifier = PolicyBuilder().store(Store([ca])).time(now).build_server_verifier(subject)
    try:
        verifier.verify(leaf, [])
    except VerificationError as exc:
        raise FedcondenseError(f"{cert}: does not verify against {ca_cert} for {host}: "
                               f"{exc}") from None


def load_node_public_key(path: str | Path) -> ec.EllipticCurvePublicKey:
    """Read an OpenSSH node public key as ``flwr supernode register`` would."""
    p = Path(path)
    try:
        key = serialization.load_ssh_public_key(p.read_bytes())
    except (OSError, ValueError) as exc:
        raise FedcondenseError(f"{p}: not an OpenSSH public key ({exc}).") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise FedcondenseError(f"{p}: Flower needs an ECDSA key on a NIST curve.")
    return key
