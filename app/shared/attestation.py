"""Parses and verifies Nitro attestation documents (COSE_Sign1, ES384, certificate chain to a pinned root).

Pure: no I/O except reading the packaged AWS root. Errors name offending values, never key material.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from types import MappingProxyType
from typing import Any, TypeVar

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app.shared.attestation_errors import (
    AttestationError,
    BadSignature,
    CertificateExpired,
    MalformedDocument,
    NonceMismatch,
    NotValidAtTime,
    StaleDocument,
    UntrustedChain,
)
from app.shared.cert_chain import check_root, load_certificate, verify_chain

__all__ = [
    "AttestationDocument",
    "AttestationError",
    "BadSignature",
    "CertificateExpired",
    "MalformedDocument",
    "NonceMismatch",
    "NotValidAtTime",
    "StaleDocument",
    "UntrustedChain",
    "load_aws_nitro_root",
    "parse_document",
    "verify_document",
]

AWS_NITRO_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
AWS_NITRO_ROOT_RESOURCE = "aws_nitro_root_g1.pem"
MAX_DOCUMENT_BYTES = 32 * 1024
COSE_SIGN1_TAG = 18
COSE_ALG_ES384 = -35
ES384_COORDINATE_BYTES = 48
PCR_LENGTHS_BYTES = frozenset({32, 48, 64})
CLOCK_SKEW_S = 60.0
DIGEST = "SHA384"
# Size limits from AWS's "Verifying the root of trust" (Nitro Enclaves attestation document specification).
OPTIONAL_FIELD_MAX_BYTES = {"public_key": 1024, "user_data": 512, "nonce": 512}

_T = TypeVar("_T")


@dataclass(frozen=True)
class AttestationDocument:
    module_id: str
    digest: str
    timestamp: datetime
    pcrs: Mapping[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None

    def pcr_hex(self, index: int) -> str:
        if index not in self.pcrs:
            raise KeyError(f"the document has no PCR{index}")
        return self.pcrs[index].hex()

    @property
    def debug_mode(self) -> bool:
        return not any(self.pcrs.get(0, b""))


@dataclass(frozen=True)
class _CoseSign1:
    protected: bytes
    payload: bytes
    signature: bytes


def load_aws_nitro_root() -> bytes:
    """Return the packaged AWS Nitro root certificate as DER, after checking its pinned fingerprint."""
    pem = resources.files("app.shared").joinpath(AWS_NITRO_ROOT_RESOURCE).read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    fingerprint = hashlib.sha256(der).hexdigest()
    if fingerprint != AWS_NITRO_ROOT_SHA256:
        raise UntrustedChain(
            f"packaged AWS root has fingerprint {fingerprint}, expected {AWS_NITRO_ROOT_SHA256}"
        )
    return der


def parse_document(cose: bytes) -> AttestationDocument:
    """Decode the structure of a document. Proves nothing about who made it."""
    return _parse_payload(_decode_cose(cose).payload)


def verify_document(
    cose: bytes,
    *,
    root_certificate_der: bytes,
    at: datetime | None = None,
    max_age_s: float | None = None,
    expected_nonce: bytes | None = None,
) -> AttestationDocument:
    """Verify signature, chain to ``root_certificate_der`` at ``at`` (default now), freshness and nonce."""
    when = at if at is not None else datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    envelope = _decode_cose(cose)
    document = _parse_payload(envelope.payload)
    check_root(document.cabundle, root_certificate_der)  # cheap: before the P-384 signature check
    leaf = load_certificate(document.certificate, "certificate")
    try:
        _verify_cose_signature(envelope, leaf)
        verify_chain(document.cabundle, leaf, root_certificate_der, when)
    except (ValueError, UnsupportedAlgorithm) as exc:  # cryptography decodes keys and extensions lazily
        raise MalformedDocument(f"a certificate in the document is malformed: {exc}") from exc
    if max_age_s is not None:
        _check_freshness(document.timestamp, when, max_age_s)
    if expected_nonce is not None:
        _check_nonce(document.nonce, expected_nonce)
    return document


def _decode_cose(cose: bytes) -> _CoseSign1:
    if len(cose) > MAX_DOCUMENT_BYTES:
        raise MalformedDocument(f"document is {len(cose)} bytes, more than {MAX_DOCUMENT_BYTES}")
    item = _cbor_loads(cose, "COSE_Sign1")
    if isinstance(item, cbor2.CBORTag):
        if item.tag != COSE_SIGN1_TAG:
            raise MalformedDocument(f"unexpected CBOR tag {item.tag}, expected {COSE_SIGN1_TAG} (COSE_Sign1)")
        item = item.value
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise MalformedDocument("COSE_Sign1 must be an array of 4 items")
    protected, unprotected, payload, signature = item
    if not all(isinstance(part, bytes) for part in (protected, payload, signature)):
        raise MalformedDocument("COSE_Sign1 protected header, payload and signature must be byte strings")
    if not isinstance(unprotected, Mapping):
        raise MalformedDocument("COSE_Sign1 unprotected header must be a map")
    header = _cbor_loads(protected, "protected header") if protected else {}
    algorithm = header.get(1) if isinstance(header, Mapping) else None
    if algorithm != COSE_ALG_ES384:
        raise MalformedDocument(
            f"unsupported COSE algorithm {algorithm!r}, expected {COSE_ALG_ES384} (ES384)"
        )
    return _CoseSign1(protected=protected, payload=payload, signature=signature)


def _cbor_loads(data: bytes, what: str) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedDocument(f"{what} is not valid CBOR: {exc}") from exc


def _parse_payload(payload: bytes) -> AttestationDocument:
    fields = _cbor_loads(payload, "payload")
    if not isinstance(fields, Mapping):
        raise MalformedDocument("payload must be a CBOR map")
    module_id = _field(fields, "module_id", str)
    if not module_id:
        raise MalformedDocument("module_id is empty")
    digest = _field(fields, "digest", str)
    if digest != DIGEST:
        raise MalformedDocument(f"digest {digest!r} is not {DIGEST!r}")
    return AttestationDocument(
        module_id=module_id,
        digest=digest,
        timestamp=_timestamp(_field(fields, "timestamp", int)),
        pcrs=_parse_pcrs(fields.get("pcrs")),
        certificate=_field(fields, "certificate", bytes),
        cabundle=_parse_cabundle(fields.get("cabundle")),
        public_key=_optional_bytes(fields, "public_key"),
        user_data=_optional_bytes(fields, "user_data"),
        nonce=_optional_bytes(fields, "nonce"),
    )


def _timestamp(milliseconds: int) -> datetime:
    if isinstance(milliseconds, bool) or milliseconds <= 0:
        raise MalformedDocument(f"timestamp {milliseconds!r} is not a positive number of milliseconds")
    try:
        return datetime.fromtimestamp(milliseconds // 1000, UTC) + timedelta(milliseconds=milliseconds % 1000)
    except (ValueError, OverflowError, OSError) as exc:
        raise MalformedDocument(f"timestamp {milliseconds!r} is out of range") from exc


def _field(fields: Mapping[Any, Any], name: str, kind: type[_T]) -> _T:
    value = fields.get(name)
    if not isinstance(value, kind):
        raise MalformedDocument(f"field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _optional_bytes(fields: Mapping[Any, Any], name: str) -> bytes | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, bytes):
        raise MalformedDocument(f"field {name!r} must be bytes or null, got {type(value).__name__}")
    if value is not None and len(value) > OPTIONAL_FIELD_MAX_BYTES[name]:
        raise MalformedDocument(
            f"field {name!r} is {len(value)} bytes, at most {OPTIONAL_FIELD_MAX_BYTES[name]}"
        )
    return value


def _parse_cabundle(raw: Any) -> tuple[bytes, ...]:
    if not isinstance(raw, list | tuple) or not raw or not all(isinstance(cert, bytes) for cert in raw):
        raise MalformedDocument("cabundle must be a non-empty list of DER certificates")
    return tuple(raw)


def _parse_pcrs(raw: Any) -> Mapping[int, bytes]:
    if not isinstance(raw, Mapping):
        raise MalformedDocument(f"field 'pcrs' must be a map, got {type(raw).__name__}")
    pcrs: dict[int, bytes] = {}
    for index, value in raw.items():
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 32:
            raise MalformedDocument(f"PCR index {index!r} is not an integer in 0..31")
        if not isinstance(value, bytes) or len(value) not in PCR_LENGTHS_BYTES:
            raise MalformedDocument(f"PCR{index} must be 32, 48 or 64 bytes")
        pcrs[index] = value
    if 0 not in pcrs:
        raise MalformedDocument("the document has no PCR0")
    return MappingProxyType(pcrs)


def _verify_cose_signature(envelope: _CoseSign1, leaf: x509.Certificate) -> None:
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise BadSignature(f"document certificate key is not P-384 (serial {leaf.serial_number:x})")
    if len(envelope.signature) != 2 * ES384_COORDINATE_BYTES:
        raise BadSignature(f"ES384 signature is {len(envelope.signature)} bytes, expected 96")
    r = int.from_bytes(envelope.signature[:ES384_COORDINATE_BYTES], "big")
    s = int.from_bytes(envelope.signature[ES384_COORDINATE_BYTES:], "big")
    to_be_signed = cbor2.dumps(["Signature1", envelope.protected, b"", envelope.payload])
    try:
        key.verify(encode_dss_signature(r, s), to_be_signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise BadSignature(
            f"COSE signature does not verify with certificate {leaf.subject.rfc4514_string()}"
        ) from exc


def _check_freshness(timestamp: datetime, when: datetime, max_age_s: float) -> None:
    age_s = (when - timestamp).total_seconds()
    if age_s > max_age_s:
        raise StaleDocument(
            f"document timestamp {timestamp.isoformat()} is {age_s:.3f}s old, more than {max_age_s}s"
        )
    if age_s < -CLOCK_SKEW_S:
        raise StaleDocument(f"document timestamp {timestamp.isoformat()} is {-age_s:.3f}s in the future")


def _check_nonce(nonce: bytes | None, expected: bytes) -> None:
    if nonce is None or not hmac.compare_digest(nonce, expected):
        shown = "none" if nonce is None else nonce.hex()
        raise NonceMismatch(f"document nonce is {shown}, expected {expected.hex()}")
