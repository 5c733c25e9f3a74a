"""What each KMS refusal becomes: SigV4's time refusals are `clock_skew`, a bad signature or token is not."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.enclave.kms_client import KmsClient, KmsError, KmsUnreachable, Recipient
from app.enclave.kms_errors import classify
from app.shared import protocol
from app.shared.protocol import Credentials, ErrorCode

# KMS's wording, as quoted in aws/aws-sdk-js#2340 and serverless/enterprise#11.
EXPIRED = (
    "Signature expired: 20181105T215603Z is now earlier than 20181105T221104Z (20181105T221604Z - 5 min.)"
)
NOT_YET = (
    "Signature not yet current: 20181120T211543Z is still later than 20181120T211529Z "
    "(20181120T211029Z + 5 min.)"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


@pytest.mark.parametrize("message", [EXPIRED, NOT_YET])
def test_a_signing_time_refusal_is_clock_skew_and_keeps_kms_words(message: str) -> None:
    code, text = classify(KmsError("InvalidSignatureException", message, 400))
    assert code is ErrorCode.CLOCK_SKEW
    assert text == f"KMS InvalidSignatureException: {message}"
    assert code in protocol.RETRYABLE  # the next attestation document measures the clock again


@pytest.mark.parametrize(
    ("kms_code", "message"),
    [
        ("InvalidSignatureException", MISMATCH),
        ("ExpiredTokenException", "The security token included in the request is expired"),
        ("UnrecognizedClientException", "The security token included in the request is invalid."),
    ],
)
def test_other_signature_and_token_refusals_stay_credentials_expired(kms_code: str, message: str) -> None:
    assert classify(KmsError(kms_code, message, 400))[0] is ErrorCode.CREDENTIALS_EXPIRED


def _certificate(valid_from: datetime, valid_to: datetime) -> tuple[bytes, bytes, bytes]:
    """(CA PEM, leaf PEM, leaf key PEM) for localhost; the CA is valid now, the leaf only in the window."""
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)

    def build(name: str, key: Any, signer: Any, *, start: datetime, end: datetime, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        return builder.sign(signer, hashes.SHA256())

    ca = build("test CA", ca_key, ca_key, start=now - timedelta(days=1), end=now + timedelta(days=1), ca=True)
    leaf = build("localhost", leaf_key, ca_key, start=valid_from, end=valid_to, ca=False)
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), leaf.public_bytes(pem), key_pem


def _decrypt_against(
    tmp_path: Path, valid_from: datetime, valid_to: datetime, *, trusted: bool = True
) -> Exception:
    """What a real KmsClient raises when the TLS server's certificate has the given validity."""
    ca_pem, leaf_pem, key_pem = _certificate(valid_from, valid_to)
    now = datetime.now(UTC)
    (tmp_path / "leaf.pem").write_bytes(leaf_pem + key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            raw, _ = listener.accept()
            with contextlib.suppress(OSError), server.wrap_socket(raw, server_side=True):
                pass

    threading.Thread(target=serve, daemon=True).start()
    client = ssl.create_default_context(
        cadata=ca_pem.decode() if trusted else _certificate(now, now)[0].decode()
    )
    kms = KmsClient(
        f"tcp://127.0.0.1:{port}", max_connections=1, endpoint_url=f"https://localhost:{port}", context=client
    )
    try:
        kms.decrypt(
            region="eu-west-1", credentials=Credentials("AKIDEXAMPLE", "secret"), key_id="k",
            ciphertext=b"\x01", encryption_context={}, recipient=Recipient.for_document(b"d"),
        )  # fmt: skip
    except (KmsError, KmsUnreachable) as error:
        return error
    finally:
        listener.close()
    raise AssertionError("the TLS handshake succeeded")


@pytest.mark.parametrize(("days_from", "days_to", "words"), [(1, 2, "not yet valid"), (-2, -1, "expired")])
def test_a_certificate_out_of_its_validity_by_the_enclave_clock_is_clock_skew(
    tmp_path: Path, days_from: int, days_to: int, words: str
) -> None:
    now = datetime.now(UTC)
    error = _decrypt_against(tmp_path, now + timedelta(days=days_from), now + timedelta(days=days_to))
    code, text = classify(error)
    assert code is ErrorCode.CLOCK_SKEW
    assert text.startswith(f"KMS's TLS certificate is {words} by the enclave's own clock")
    assert code in protocol.RETRYABLE


def test_a_certificate_from_an_unknown_issuer_stays_kms_unavailable(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    error = _decrypt_against(tmp_path, now - timedelta(days=1), now + timedelta(days=1), trusted=False)
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert classify(error)[0] is ErrorCode.KMS_UNAVAILABLE
