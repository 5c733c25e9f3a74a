"""Framing as a pure object: split, merged, oversized and truncated frames, no sockets."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.shared.framing import HEADER, FrameDecoder, FrameTooLarge, TruncatedFrame, encode_frame

payloads = st.lists(st.binary(max_size=300), max_size=12)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(payloads, st.lists(st.integers(min_value=0), max_size=20))
def test_any_split_of_the_stream_yields_the_same_frames(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(p) for p in frames)
    decoder = FrameDecoder()
    out = [frame for chunk in _split(stream, cuts) for frame in decoder.feed(chunk)]
    assert out == frames
    decoder.close()


def test_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    stream = encode_frame(b"hello") + encode_frame(b"") + encode_frame(b"world")
    out = [frame for byte in stream for frame in decoder.feed(bytes([byte]))]
    assert out == [b"hello", b"", b"world"]


def test_many_frames_in_one_chunk() -> None:
    stream = b"".join(encode_frame(str(i).encode()) for i in range(50))
    assert FrameDecoder().feed(stream) == [str(i).encode() for i in range(50)]


def test_oversized_header_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    with pytest.raises(FrameTooLarge, match="101 bytes exceeds the 100-byte limit"):
        decoder.feed(HEADER.pack(101))


def test_encoder_refuses_what_the_peer_would_refuse() -> None:
    with pytest.raises(FrameTooLarge):
        encode_frame(b"x" * 11, max_frame_bytes=10)


@pytest.mark.parametrize("cut", [1, 3, 4, 6])
def test_stream_ending_inside_a_frame_is_truncated(cut: int) -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"abcdef")[:cut])
    with pytest.raises(TruncatedFrame, match="inside a frame"):
        decoder.close()


def test_close_between_frames_is_clean() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"abc"))
    assert decoder.pending_bytes == 0
    decoder.close()


@given(st.binary(max_size=64))
def test_garbage_never_yields_more_than_it_could_hold(garbage: bytes) -> None:
    decoder = FrameDecoder(max_frame_bytes=32)
    try:
        frames = decoder.feed(garbage)
    except FrameTooLarge:
        return
    assert sum(len(f) + HEADER.size for f in frames) + decoder.pending_bytes == len(garbage)


def test_a_frame_whose_header_alone_arrived_is_in_progress() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(HEADER.pack(10)) == []
    assert decoder.in_frame
    assert decoder.pending_bytes == HEADER.size
