"""A software Nitro Secure Module for local mode: throw-away P-384 PKI, ES384 documents shaped like AWS's.

It proves nothing about hardware; it exists so the real verification code runs unchanged on a laptop.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.enclave.nsm import Stamp, TimedDocument

PKI_VALIDITY = timedelta(days=365)
TLS_VALIDITY = timedelta(days=30)
BACKDATE = timedelta(minutes=5)
PCR_COUNT = 16
PCR_BYTES = 48
ES384_COORDINATE_BYTES = 48
PROTECTED_HEADER = cbor2.dumps({1: -35})  # alg: ES384
ATTESTATION_ROOT_FILE = "attestation-root.pem"  # what verifiers of local documents trust
TLS_CA_FILE = "tls-ca.pem"  # what HTTPS clients of the emulator trust (written by LocalPki.save)
MEASUREMENT_DOMAIN = b"nitro-enclave-demo/software-measurement/v1\x00"
_FILES = {
    "root": ATTESTATION_ROOT_FILE,
    "intermediate": "attestation-intermediate.pem",
    "leaf": "attestation-leaf.pem",
    "leaf_key": "attestation-leaf.key",
    "tls_ca": TLS_CA_FILE,
    "tls_ca_key": "tls-ca.key",
}


@dataclass(frozen=True)
class _Issuer:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class LocalPki:
    """Attestation chain root -> intermediate -> leaf (leaf key signs documents), plus a separate TLS CA."""

    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    tls_ca: x509.Certificate
    tls_ca_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, *, now: datetime | None = None, validity: timedelta = PKI_VALIDITY) -> LocalPki:
        start = (now or datetime.now(UTC)) - BACKDATE
        end = start + validity
        root = _self_signed("local-nitro-root", start, end)
        intermediate = _issue_ca(root, "local-nitro-intermediate", start, end, path_length=0)
        leaf_key = ec.generate_private_key(ec.SECP384R1())
        leaf = _issue_signing_leaf(intermediate, leaf_key, start, end)
        tls_ca = _self_signed("local-emulator-tls-ca", start, end)
        return cls(root.certificate, intermediate.certificate, leaf, leaf_key, tls_ca.certificate, tls_ca.key)

    @property
    def root_certificate_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    @property
    def cabundle(self) -> tuple[bytes, ...]:
        return tuple(cert.public_bytes(serialization.Encoding.DER) for cert in (self.root, self.intermediate))

    @property
    def tls_ca_pem(self) -> bytes:
        return self.tls_ca.public_bytes(serialization.Encoding.PEM)

    def tls_certificate_for(self, *names: str) -> tuple[bytes, bytes]:
        """Issue a server certificate for DNS names / IP addresses: (certificate PEM, private key PEM)."""
        if not names:
            raise ValueError("tls_certificate_for needs at least one DNS name or IP address")
        key = ec.generate_private_key(ec.SECP256R1())
        start = datetime.now(UTC) - BACKDATE
        end = min(start + TLS_VALIDITY, self.tls_ca.not_valid_after_utc)
        issuer = _Issuer(self.tls_ca, self.tls_ca_key)
        builder = _builder(names[0], issuer.certificate.subject, key.public_key(), start, end)
        builder = (
            builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_authority_key_id(issuer), critical=False)
        )
        certificate = builder.sign(issuer.key, hashes.SHA256())
        return certificate.public_bytes(serialization.Encoding.PEM), _private_pem(key)

    def save(self, directory: Path) -> None:
        """Write PEM files so separate processes (emulator, enclave) share one PKI. Keys are mode 0600."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, cert in (("root", self.root), ("intermediate", self.intermediate), ("leaf", self.leaf)):
            (directory / _FILES[name]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / _FILES["tls_ca"]).write_bytes(self.tls_ca_pem)
        _write_private(directory / _FILES["leaf_key"], _private_pem(self.leaf_key))
        _write_private(directory / _FILES["tls_ca_key"], _private_pem(self.tls_ca_key))

    @classmethod
    def load(cls, directory: Path) -> LocalPki:
        def cert(name: str) -> x509.Certificate:
            return x509.load_pem_x509_certificate((directory / _FILES[name]).read_bytes())

        return cls(
            root=cert("root"),
            intermediate=cert("intermediate"),
            leaf=cert("leaf"),
            leaf_key=_load_ec_key(directory / _FILES["leaf_key"]),
            tls_ca=cert("tls_ca"),
            tls_ca_key=_load_ec_key(directory / _FILES["tls_ca_key"]),
        )


class SoftwareNsm:
    """Implements app.enclave.nsm.SecureModule with a LocalPki, building documents like the real NSM."""

    def __init__(
        self,
        pki: LocalPki,
        pcrs: Mapping[int, bytes],
        module_id: str = "local-software-nsm",
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pki = pki
        self._pcrs = _complete_pcrs(pcrs)
        self._module_id = module_id
        self._clock = clock

    def attest(
        self, *, public_key: bytes | None = None, user_data: bytes | None = None, nonce: bytes | None = None
    ) -> bytes:
        payload = cbor2.dumps(
            {
                "module_id": self._module_id,
                "digest": "SHA384",
                "timestamp": int(self._clock().timestamp() * 1000),
                "pcrs": dict(self._pcrs),
                "certificate": self._pki.leaf.public_bytes(serialization.Encoding.DER),
                "cabundle": list(self._pki.cabundle),
                "public_key": public_key,
                "user_data": user_data,
                "nonce": nonce,
            }
        )
        return cbor2.dumps([PROTECTED_HEADER, {}, payload, self._sign(payload)])

    def attest_timed(
        self, stamp: Callable[[], Stamp], *, public_key: bytes | None = None, user_data: bytes | None = None,
        nonce: bytes | None = None,
    ) -> TimedDocument:  # fmt: skip
        """Stamps around the document's making, as `NsmDevice` stamps around its ioctl."""
        sent = stamp()
        document = self.attest(public_key=public_key, user_data=user_data, nonce=nonce)
        return TimedDocument(document, sent, stamp())

    def _sign(self, payload: bytes) -> bytes:
        to_be_signed = cbor2.dumps(["Signature1", PROTECTED_HEADER, b"", payload])
        r, s = decode_dss_signature(self._pki.leaf_key.sign(to_be_signed, ec.ECDSA(hashes.SHA384())))
        return r.to_bytes(ES384_COORDINATE_BYTES, "big") + s.to_bytes(ES384_COORDINATE_BYTES, "big")


def software_measurement(paths: Iterable[Path], *, root: Path | None = None) -> bytes:
    """SHA-384 over (relative path, content) of each file, sorted by path: our stand-in for PCR0."""
    entries: dict[str, Path] = {}
    for path in paths:
        name = (path.relative_to(root) if root is not None else path).as_posix()
        if name in entries:
            raise ValueError(f"{name} is listed twice")
        entries[name] = path
    digest = hashlib.sha384(MEASUREMENT_DOMAIN)
    for name in sorted(entries):
        content = (root / entries[name] if root is not None else entries[name]).read_bytes()
        for part in (name.encode(), content):
            digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


def measure_enclave_sources(repo_root: Path) -> bytes:
    """Measure every file the enclave image copies in: app/enclave and app/shared (bytecode caches aside)."""
    paths = [
        path
        for package in ("app/enclave", "app/shared")
        for path in (repo_root / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    return software_measurement(paths, root=repo_root)


def _complete_pcrs(pcrs: Mapping[int, bytes]) -> Mapping[int, bytes]:
    for index, value in pcrs.items():
        if not 0 <= index < PCR_COUNT or len(value) != PCR_BYTES:
            raise ValueError(f"PCR{index} must have an index in 0..{PCR_COUNT - 1} and {PCR_BYTES} bytes")
    return {index: bytes(pcrs.get(index, bytes(PCR_BYTES))) for index in range(PCR_COUNT)}


def _builder(
    common_name: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, start: datetime, end: datetime
) -> x509.CertificateBuilder:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(True, False, False, False, False, True, True, False, False)


def _self_signed(common_name: str, start: datetime, end: datetime) -> _Issuer:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(common_name, name, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_usage(), critical=True)
    )
    return _Issuer(builder.sign(key, hashes.SHA384()), key)


def _issue_ca(
    issuer: _Issuer, common_name: str, start: datetime, end: datetime, *, path_length: int
) -> _Issuer:
    key = ec.generate_private_key(ec.SECP384R1())
    builder = (
        _builder(common_name, issuer.certificate.subject, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(_authority_key_id(issuer), critical=False)
    )
    return _Issuer(builder.sign(issuer.key, hashes.SHA384()), key)


def _issue_signing_leaf(
    issuer: _Issuer, key: ec.EllipticCurvePrivateKey, start: datetime, end: datetime
) -> x509.Certificate:
    usage = x509.KeyUsage(True, True, False, False, False, False, False, False, False)
    builder = (
        _builder("local-software-nsm", issuer.certificate.subject, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=False)
        .add_extension(_authority_key_id(issuer), critical=False)
    )
    return builder.sign(issuer.key, hashes.SHA384())


def _authority_key_id(issuer: _Issuer) -> x509.AuthorityKeyIdentifier:
    public_key = issuer.key.public_key()
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{path} does not hold an EC private key")
    return key
