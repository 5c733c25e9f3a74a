"""The ways an attestation document can fail to be trusted: one hierarchy for parser and chain checks."""

from __future__ import annotations


class AttestationError(Exception):
    """Base class: the attestation document cannot be trusted."""


class MalformedDocument(AttestationError):
    """The bytes are not a Nitro attestation document."""


class BadSignature(AttestationError):
    """The COSE signature does not verify with the document's certificate."""


class UntrustedChain(AttestationError):
    """The certificate chain does not lead to the pinned root."""


class CertificateExpired(AttestationError):
    """A certificate of the chain is not valid at the checked time."""


NotValidAtTime = CertificateExpired


class StaleDocument(AttestationError):
    """The document is older than allowed, or from the future."""


class NonceMismatch(AttestationError):
    """The document does not carry the expected nonce."""
