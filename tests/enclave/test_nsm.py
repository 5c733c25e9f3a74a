"""NsmDevice against a fake kernel driver that reads and writes the iovecs through raw memory."""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest

from app.enclave.nsm import MAX_RESPONSE_BYTES, NSM_IOCTL_REQUEST, NsmDevice, NsmError, SecureModule

DOCUMENT = b"\x84cose-sign1-document"
IOVEC_PAIR = struct.Struct("=QQQQ")

Answer = Callable[[dict[str, Any]], Any]


class FakeDriver:
    """Plays the kernel: decodes the request iovec, writes an answer, sets the response length."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.codes: list[int] = []

    def __call__(self, fd: int, code: int, arg: Any) -> int:
        self.codes.append(code)
        view = memoryview(arg).cast("B")
        req_ptr, req_len, resp_ptr, resp_cap = IOVEC_PAIR.unpack(view)
        request = cbor2.loads(ctypes.string_at(req_ptr, req_len))
        self.requests.append(request)
        reply = self.answer(request)
        payload = reply if isinstance(reply, bytes) else cbor2.dumps(reply)
        written = min(len(payload), resp_cap)
        ctypes.memmove(resp_ptr, payload, written)
        IOVEC_PAIR.pack_into(view, 0, req_ptr, req_len, resp_ptr, len(payload))
        return 0


def attestation_answer(_: dict[str, Any]) -> Any:
    return {"Attestation": {"document": DOCUMENT}}


@pytest.fixture
def device_path(tmp_path: Path) -> str:
    path = tmp_path / "nsm"
    path.write_bytes(b"")
    return str(path)


def test_attest_returns_the_document(device_path: str) -> None:
    with NsmDevice(device_path, ioctl=FakeDriver(attestation_answer)) as device:
        assert device.attest(public_key=b"pk") == DOCUMENT


def test_request_carries_all_three_fields(device_path: str) -> None:
    driver = FakeDriver(attestation_answer)
    with NsmDevice(device_path, ioctl=driver) as device:
        device.attest(public_key=b"pk", user_data=b"ud", nonce=b"n")
    assert driver.requests == [{"Attestation": {"public_key": b"pk", "user_data": b"ud", "nonce": b"n"}}]


def test_absent_fields_are_sent_as_null(device_path: str) -> None:
    driver = FakeDriver(attestation_answer)
    with NsmDevice(device_path, ioctl=driver) as device:
        device.attest()
    assert driver.requests == [{"Attestation": {"public_key": None, "user_data": None, "nonce": None}}]


def test_uses_the_nsm_ioctl_number(device_path: str) -> None:
    driver = FakeDriver(attestation_answer)
    with NsmDevice(device_path, ioctl=driver) as device:
        device.attest()
    assert driver.codes == [NSM_IOCTL_REQUEST] == [0xC0200A00]


def test_error_answer_raises_with_the_code(device_path: str) -> None:
    with (
        NsmDevice(device_path, ioctl=FakeDriver(lambda _: {"Error": "InputTooLarge"})) as device,
        pytest.raises(NsmError, match="InputTooLarge"),
    ):
        device.attest(user_data=b"x" * 2000)


def test_answer_without_document_raises(device_path: str) -> None:
    with (
        NsmDevice(device_path, ioctl=FakeDriver(lambda _: {"DescribePCR": {}})) as device,
        pytest.raises(NsmError, match="no attestation document"),
    ):
        device.attest()


def test_non_cbor_answer_raises(device_path: str) -> None:
    with (
        NsmDevice(device_path, ioctl=FakeDriver(lambda _: b"\xff\xff")) as device,
        pytest.raises(NsmError, match="not CBOR"),
    ):
        device.attest()


def test_oversized_answer_length_raises(device_path: str) -> None:
    huge = {"Attestation": {"document": b"x" * MAX_RESPONSE_BYTES}}
    with (
        NsmDevice(device_path, ioctl=FakeDriver(lambda _: huge)) as device,
        pytest.raises(NsmError, match="answered"),
    ):
        device.attest()


def test_ioctl_failure_raises_nsm_error(device_path: str) -> None:
    def failing(fd: int, code: int, arg: Any) -> int:
        raise OSError(22, "Invalid argument")

    with NsmDevice(device_path, ioctl=failing) as device, pytest.raises(NsmError, match="Invalid argument"):
        device.attest()


def test_missing_device_raises_nsm_error(tmp_path: Path) -> None:
    with pytest.raises(NsmError, match="cannot open"):
        NsmDevice(str(tmp_path / "absent"))


def test_closed_device_refuses(device_path: str) -> None:
    device = NsmDevice(device_path, ioctl=FakeDriver(attestation_answer))
    device.close()
    with pytest.raises(NsmError, match="closed"):
        device.attest()


def test_concurrent_callers_each_get_their_own_answer(device_path: str) -> None:
    driver = FakeDriver(lambda request: {"Attestation": {"document": request["Attestation"]["nonce"]}})
    results: dict[int, bytes] = {}

    def worker(index: int, device: SecureModule) -> None:
        for _ in range(50):
            results[index] = device.attest(nonce=index.to_bytes(2, "big"))

    with NsmDevice(device_path, ioctl=driver) as device:
        threads = [threading.Thread(target=worker, args=(i, device)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == {i: i.to_bytes(2, "big") for i in range(8)}


def test_real_ioctl_on_a_non_device_raises_nsm_error(device_path: str) -> None:
    with NsmDevice(device_path) as device, pytest.raises(NsmError, match="ioctl"):
        device.attest()
