"""X.509 path checks for attestation documents: the bundle must lead from the pinned root to the leaf.

Pure; each failure names the certificate at fault. Used by app/shared/attestation.py only.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from app.shared.attestation_errors import CertificateExpired, MalformedDocument, UntrustedChain

_E = TypeVar("_E", bound=x509.ExtensionType)


def load_certificate(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:
        raise MalformedDocument(f"{what} is not a DER X.509 certificate: {exc}") from exc


def check_root(cabundle: tuple[bytes, ...], root_der: bytes) -> None:
    """UntrustedChain unless cabundle[0] is the pinned root: two hashes, so callers check it before any
    signature (a document under another root costs no ECDSA verification)."""
    expected = hashlib.sha256(root_der).hexdigest()
    presented = hashlib.sha256(cabundle[0] if cabundle else b"").hexdigest()
    if not hmac.compare_digest(expected, presented):
        raise UntrustedChain(f"cabundle root has SHA-256 {presented}, the pinned root is {expected}")


def verify_chain(
    cabundle: tuple[bytes, ...], leaf: x509.Certificate, root_der: bytes, when: datetime
) -> None:
    """cabundle[0] must be the pinned root; each certificate must sign the next, down to the leaf."""
    check_root(cabundle, root_der)
    chain = [load_certificate(der, f"cabundle[{i}]") for i, der in enumerate(cabundle)]
    chain.append(leaf)
    for position, certificate in enumerate(chain):
        _check_validity(certificate, when)
        if position + 1 < len(chain):
            _check_issuer(certificate, chain[position + 1], cas_below=len(chain) - position - 2)
    _check_leaf(leaf)


def _check_validity(certificate: x509.Certificate, when: datetime) -> None:
    if not certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
        start = certificate.not_valid_before_utc.isoformat()
        end = certificate.not_valid_after_utc.isoformat()
        raise CertificateExpired(
            f"certificate {certificate.subject.rfc4514_string()} is valid from {start} to {end}, "
            f"not at {when.isoformat()}"
        )


def _check_issuer(issuer: x509.Certificate, child: x509.Certificate, *, cas_below: int) -> None:
    name = issuer.subject.rfc4514_string()
    constraints = _extension(issuer, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise UntrustedChain(f"certificate {name} issues a certificate but is not a CA")
    if constraints.path_length is not None and cas_below > constraints.path_length:
        raise UntrustedChain(
            f"certificate {name} allows {constraints.path_length} CAs below it, found {cas_below}"
        )
    usage = _extension(issuer, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise UntrustedChain(f"certificate {name} may not sign certificates (keyUsage)")
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise UntrustedChain(f"certificate {child.subject.rfc4514_string()} is not signed by {name}") from exc


def _check_leaf(leaf: x509.Certificate) -> None:
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise UntrustedChain(f"document certificate {leaf.subject.rfc4514_string()} is a CA")
    usage = _extension(leaf, x509.KeyUsage)
    if usage is not None and not usage.digital_signature:
        raise UntrustedChain(f"document certificate {leaf.subject.rfc4514_string()} may not sign (keyUsage)")


def _extension(certificate: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
