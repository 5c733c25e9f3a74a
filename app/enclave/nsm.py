"""Client for the Nitro Secure Module (/dev/nsm): CBOR requests through one ioctl, attestation only.

It asks the device for documents; it never parses, trusts or logs them. `attest_timed` also stamps the
moments just before and just after the device's own work, inside the lock that serialises requests, so time
spent queueing behind another caller (the parent's `attest` command shares this device) is outside them.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Protocol

import cbor2

NSM_DEVICE_PATH = "/dev/nsm"
# _IOWR(0x0A, 0, sizeof(struct nsm_message) == 32), from the Nitro Enclaves kernel driver.
NSM_IOCTL_REQUEST = 0xC0200A00
MAX_RESPONSE_BYTES = 16 * 1024


class NsmError(Exception):
    """The secure module could not be reached or refused the request."""


class Stamp(NamedTuple):
    """One reading of the caller's clocks: `time.monotonic()` and `time.time()`, or stand-ins for them."""

    monotonic: float
    wall: float


@dataclass(frozen=True)
class TimedDocument:
    """A document and the caller's clocks just before (`sent`) and after (`answered`) the device made it."""

    document: bytes
    sent: Stamp
    answered: Stamp


class SecureModule(Protocol):
    def attest(
        self, *, public_key: bytes | None = None, user_data: bytes | None = None, nonce: bytes | None = None
    ) -> bytes:
        """Return an attestation document (COSE_Sign1 bytes) binding the given values."""
        ...

    def attest_timed(
        self, stamp: Callable[[], Stamp], *, public_key: bytes | None = None, user_data: bytes | None = None,
        nonce: bytes | None = None,
    ) -> TimedDocument:  # fmt: skip
        """As `attest`, with `stamp()` called right before and right after the device's work and after any
        wait for another caller, so the document's timestamp lies between the two stamps."""
        ...


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _NsmMessage(ctypes.Structure):
    _fields_ = (("request", _IoVec), ("response", _IoVec))


class NsmDevice:
    """The real device. One instance may be shared by threads: requests are serialised."""

    def __init__(self, path: str = NSM_DEVICE_PATH, *, ioctl: Callable[..., Any] = fcntl.ioctl) -> None:
        self._path = path
        self._ioctl = ioctl
        self._lock = threading.Lock()
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise NsmError(f"cannot open the secure module {path}: {exc.strerror}") from exc

    def attest(
        self, *, public_key: bytes | None = None, user_data: bytes | None = None, nonce: bytes | None = None
    ) -> bytes:
        return self.attest_timed(_no_stamp, public_key=public_key, user_data=user_data, nonce=nonce).document

    def attest_timed(
        self, stamp: Callable[[], Stamp], *, public_key: bytes | None = None, user_data: bytes | None = None,
        nonce: bytes | None = None,
    ) -> TimedDocument:  # fmt: skip
        request = {"Attestation": {"public_key": public_key, "user_data": user_data, "nonce": nonce}}
        answer, sent, answered = self._call(cbor2.dumps(request), stamp)
        return TimedDocument(_attestation_document(answer), sent, answered)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> NsmDevice:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, request: bytes, stamp: Callable[[], Stamp]) -> tuple[Any, Stamp, Stamp]:
        request_buffer = ctypes.create_string_buffer(request, len(request))
        response_buffer = ctypes.create_string_buffer(MAX_RESPONSE_BYTES)
        message = _NsmMessage(
            _IoVec(ctypes.addressof(request_buffer), len(request)),
            _IoVec(ctypes.addressof(response_buffer), MAX_RESPONSE_BYTES),
        )
        with self._lock:
            if self._fd is None:
                raise NsmError(f"the secure module {self._path} is closed")
            sent = stamp()  # inside the lock: a wait for another caller is not part of the measurement
            try:
                self._ioctl(self._fd, NSM_IOCTL_REQUEST, message)
            except OSError as exc:
                raise NsmError(f"ioctl on {self._path} failed: {exc.strerror or exc}") from exc
            answered = stamp()
        length = message.response.iov_len
        if not 0 < length <= MAX_RESPONSE_BYTES:
            raise NsmError(f"the secure module answered {length} bytes (buffer {MAX_RESPONSE_BYTES})")
        try:
            return cbor2.loads(response_buffer.raw[:length]), sent, answered
        except (cbor2.CBORDecodeError, ValueError) as exc:
            raise NsmError(f"the secure module's answer is not CBOR: {exc}") from exc


def _no_stamp() -> Stamp:
    return Stamp(0.0, 0.0)


def _attestation_document(answer: Any) -> bytes:
    if isinstance(answer, dict) and "Error" in answer:
        raise NsmError(f"the secure module refused the request: {answer['Error']!r}")
    body = answer.get("Attestation") if isinstance(answer, dict) else None
    document = body.get("document") if isinstance(body, dict) else None
    if not isinstance(document, bytes) or not document:
        raise NsmError("the secure module's answer has no attestation document")
    return document
