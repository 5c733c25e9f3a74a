"""Length-prefixed frames for the parent ↔ enclave link, as a pure object: bytes in, frames out.

A frame is a 4-byte big-endian length followed by that many bytes. No sockets here (see transport.py);
the decoder never buffers more than one frame plus its header, and refuses a frame over the limit as
soon as its header arrives, before reading the body.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024  # a decrypt request with a session token is ~3 KiB; an attestation ~5 KiB


class FramingError(Exception):
    """The byte stream is not a valid sequence of frames; the connection cannot continue."""


class FrameTooLarge(FramingError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


class TruncatedFrame(FramingError):
    def __init__(self, buffered: int) -> None:
        super().__init__(f"connection ended inside a frame ({buffered} bytes buffered)")
        self.buffered = buffered


def encode_frame(payload: bytes, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Header + payload, refusing what the peer would refuse."""
    if len(payload) > max_frame_bytes:
        raise FrameTooLarge(len(payload), max_frame_bytes)
    return HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Feed it whatever recv() returned; it hands back every complete frame, in order."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._buffer = bytearray()
        self._expected: int | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame held back, its header included (0 between frames)."""
        return len(self._buffer) + (HEADER.size if self._expected is not None else 0)

    @property
    def in_frame(self) -> bool:
        """True once any byte of a frame has arrived and until that frame is complete."""
        return self._expected is not None or bool(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        while True:
            if self._expected is None:
                if len(self._buffer) < HEADER.size:
                    return frames
                (size,) = HEADER.unpack_from(self._buffer)
                if size > self._max:
                    raise FrameTooLarge(size, self._max)
                del self._buffer[: HEADER.size]
                self._expected = size
            if len(self._buffer) < self._expected:
                return frames
            frames.append(bytes(self._buffer[: self._expected]))
            del self._buffer[: self._expected]
            self._expected = None

    def close(self) -> None:
        """The peer is gone: fine between frames, an error inside one."""
        if self.in_frame:
            raise TruncatedFrame(self.pending_bytes)
