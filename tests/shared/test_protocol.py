"""The parent ↔ enclave message layer: round trips, versioning, typed errors, secrets kept out of reprs."""

from __future__ import annotations

import json

import pytest

from app.shared import protocol
from app.shared.protocol import Credentials, DecryptRequest, ErrorCode, Op, ProtocolError, Request, Response

CREDS = Credentials("AKIDEXAMPLE", "secret-value", "token-value")


def test_request_round_trip() -> None:
    request = Request(7, Op.PING, {"a": 1})
    assert protocol.decode_request(protocol.encode_request(request)) == request


def test_decrypt_request_round_trip() -> None:
    original = DecryptRequest(b"\x01\x02", {"app": "x", "card_id": "c1"}, "eu-west-1", CREDS, "alias/k")
    decoded = protocol.parse_decrypt(protocol.decrypt_body(original))
    assert decoded == original


def test_credentials_never_show_in_a_repr() -> None:
    text = repr(DecryptRequest(b"\x01", {}, "us-east-1", CREDS, "alias/k"))
    assert "secret-value" not in text
    assert "token-value" not in text
    assert "AKIDEXAMPLE" not in text


def test_error_response_carries_code_message_and_retryability() -> None:
    encoded = protocol.encode_response(protocol.error_response(3, ErrorCode.KMS_THROTTLED, "slow down"))
    assert json.loads(encoded)["error"] == {
        "code": "kms_throttled",
        "message": "slow down",
        "retryable": True,
    }
    decoded = protocol.decode_response(encoded)
    assert decoded.error is not None
    assert decoded.error.retryable


@pytest.mark.parametrize(
    "code",
    [ErrorCode.INVALID_CIPHERTEXT, ErrorCode.ACCESS_DENIED, ErrorCode.NOT_A_CARD, ErrorCode.BAD_REQUEST],
)
def test_permanent_codes_are_not_retryable(code: ErrorCode) -> None:
    assert not protocol.ErrorInfo(code, "").retryable


def test_ok_response_round_trip() -> None:
    response = Response(9, body={"last4": "1111"})
    assert protocol.decode_response(protocol.encode_response(response)) == response


@pytest.mark.parametrize(
    ("payload", "code", "request_id"),
    [
        (b"\xff\xfe", ErrorCode.BAD_REQUEST, 0),
        (b"[1,2]", ErrorCode.BAD_REQUEST, 0),
        (b'{"v":1,"id":"seven","op":"ping"}', ErrorCode.BAD_REQUEST, 0),
        (b'{"v":1,"id":0,"op":"ping"}', ErrorCode.BAD_REQUEST, 0),
        (b'{"v":2,"id":5,"op":"ping"}', ErrorCode.UNSUPPORTED_VERSION, 5),
        (b'{"v":1,"id":5,"op":"launch"}', ErrorCode.BAD_REQUEST, 5),
        (b'{"v":1,"id":5,"op":"ping","body":[]}', ErrorCode.BAD_REQUEST, 5),
    ],
)
def test_bad_requests_raise_a_typed_error_with_the_id_when_known(
    payload: bytes, code: ErrorCode, request_id: int
) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode_request(payload)
    assert caught.value.code is code
    assert caught.value.request_id == request_id


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ciphertext": "!!", "region": "r", "credentials": {"access_key_id": "a", "secret_access_key": "s"}},
        {"ciphertext": "AQ==", "region": "", "credentials": {"access_key_id": "a", "secret_access_key": "s"}},
        {"ciphertext": "AQ==", "region": "r", "credentials": {"access_key_id": "a"}},
        {"ciphertext": "AQ==", "region": "r", "encryption_context": {"a": 1}, "credentials": {}},
    ],
)
def test_malformed_decrypt_bodies_are_bad_requests(body: dict[str, object]) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_decrypt(body)
    assert caught.value.code is ErrorCode.BAD_REQUEST


def test_attest_nonce_bounds() -> None:
    with pytest.raises(ProtocolError, match="16-512 bytes"):
        protocol.parse_attest(protocol.attest_body(b"short"))
    assert protocol.parse_attest(protocol.attest_body(b"n" * 32)) == b"n" * 32


def test_decrypt_result_must_be_four_digits() -> None:
    with pytest.raises(ProtocolError):
        protocol.parse_decrypt_result({"last4": "4111111111111111"})


def _envelope(**fields: object) -> bytes:
    return json.dumps({"v": 1, "id": 3, "op": "ping", "body": {}, **fields}).encode()


def test_a_deeply_nested_frame_is_a_bad_request() -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode_request(b"[" * 131_071 + b"]" * 131_071)
    assert caught.value.code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("version", [True, 1.0])
def test_protocol_version_must_be_the_integer_1(version: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode_request(_envelope(v=version))
    assert caught.value.code is ErrorCode.UNSUPPORTED_VERSION


def test_an_unknown_op_is_not_echoed_whole() -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode_request(_envelope(op="o" * 100_000))
    assert len(str(caught.value)) < 200


def test_a_non_ascii_ciphertext_is_a_bad_request() -> None:
    body = protocol.decrypt_body(DecryptRequest(b"\x01", {}, "us-east-1", CREDS, "alias/k"))
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_decrypt({**body, "ciphertext": "AAAA€AAA"})
    assert caught.value.code is ErrorCode.BAD_REQUEST


def test_a_decrypt_request_must_name_the_key() -> None:
    body = protocol.decrypt_body(DecryptRequest(b"\x01", {}, "us-east-1", CREDS, "alias/k"))
    del body["key_id"]
    with pytest.raises(ProtocolError, match="key_id"):
        protocol.parse_decrypt(body)


def test_error_answers_are_bounded() -> None:
    payload = protocol.encode_response(protocol.error_response(1, ErrorCode.INTERNAL, "x" * 10**6))
    assert len(payload) < 1024
