"""The enclave's log channel: the scrubber (property-based), counters, and delivery over real TCP."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.enclave import log_channel
from app.enclave.decryptor import DecryptError
from app.enclave.handler import EnclaveHandler
from app.enclave.log_channel import LogChannel, scrub, scrub_value
from app.parent.log_sink import LogSink
from app.shared import framing, protocol, transport
from app.shared.protocol import ErrorCode, Op, Request
from tests.enclave.server_helpers import roundtrip, running_server
from tests.parent.sink_helpers import running_sink

VISA_TEST = "4111111111111111"  # public test numbers only
AMEX_TEST = "378282246310005"
SEPARATORS = re.compile(r"[\s\-]")


def luhn_complete(body: str) -> str:
    """`body` plus the check digit that makes it Luhn-valid."""
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return luhn_complete(number[:-1]) == number


def leaks_a_number(text: str) -> bool:
    """True if, ignoring spaces and dashes, 12 or more digits stand together anywhere."""
    return re.search(r"\d{12,}", SEPARATORS.sub("", text)) is not None


card_numbers = st.integers(11, 18).flatmap(
    lambda n: st.text("0123456789", min_size=n, max_size=n).map(luhn_complete)
)
separators = st.sampled_from(["", " ", "-", " - ", "  ", "\t", "\n"])
surroundings = st.text(st.characters(codec="utf-8"), max_size=40)


@st.composite
def formatted_cards(draw: st.DrawFn) -> tuple[str, str]:
    number = draw(card_numbers)
    text = number[0]
    for digit in number[1:]:
        text += (draw(separators) if draw(st.booleans()) else "") + digit
    return number, draw(surroundings) + text + draw(surroundings)


@given(formatted_cards())
@settings(max_examples=500)
def test_no_luhn_valid_card_survives_however_it_is_written(case: tuple[str, str]) -> None:
    number, text = case
    assert luhn_valid(number)
    assert 12 <= len(number) <= 19
    scrubbed = scrub(text)
    assert number not in SEPARATORS.sub("", scrubbed)
    assert not leaks_a_number(scrubbed)


@given(st.text(st.sampled_from("0123456789 -\tab:[]"), max_size=300))
@settings(max_examples=500)
def test_no_run_of_twelve_digits_survives_any_text(text: str) -> None:
    assert not leaks_a_number(scrub(text))


def test_short_numbers_ids_and_timings_are_kept() -> None:
    text = "decrypted id=42 ms=12.5 last4=1111 at 2026-11-27T10:00:00.123Z"
    assert scrub(text) == text


def test_values_are_scrubbed_in_nested_fields_keys_and_big_integers() -> None:
    value = {"card": int(VISA_TEST), "nested": [f"x {AMEX_TEST} y"], VISA_TEST: "k", "id": 7, "ok": True}
    scrubbed = scrub_value(value)
    assert scrubbed == {
        "card": "[redacted]",
        "nested": ["x [redacted] y"],
        "[redacted]": "k",
        "id": 7,
        "ok": True,
    }


def _record(name: str, msg: str, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, None, None)
    record.fields = fields
    return record


def test_counters_follow_the_handlers_own_log_records() -> None:
    counters = log_channel.Counters()
    counters.observe(_record("app.enclave.handler", "decrypted", id=1, kms_ms=10.0, ms=12.5))
    counters.observe(_record("app.enclave.handler", "decrypted", id=2, kms_ms=20.0, ms=22.5))
    counters.observe(_record("app.enclave.handler", "decrypt refused", id=3, code="access_denied"))
    counters.observe(_record("app.enclave.server", "handler failed", op="decrypt", id=4))
    counters.observe(_record("app.enclave.egress", "decrypted"))
    assert counters.snapshot() == {
        "decrypt_ok": 2,
        "decrypt_failed": {"access_denied": 1, "internal": 1},
        "decrypt_ms_sum": 35.0,
        "kms_ms_sum": 30.0,
    }


def test_off_unless_a_url_is_given() -> None:
    assert log_channel.resolve_url(None, None) is None
    assert log_channel.resolve_url("off", "tcp://127.0.0.1:1") is None
    assert log_channel.resolve_url(None, "tcp://127.0.0.1:9") == "tcp://127.0.0.1:9"
    assert log_channel.resolve_url("vsock://3:5005", None) == "vsock://3:5005"


@contextmanager
def channel_logger(url: str) -> Iterator[tuple[logging.Logger, log_channel.ChannelHandler]]:
    logger = logging.getLogger("app.enclave.test_channel")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = log_channel.install(url, logger)
    try:
        yield logger, handler
    finally:
        log_channel.uninstall(handler, logger)


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _wait_for(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_lines_arrive_with_their_fields_and_the_enclave_source() -> None:
    with running_sink() as (url, sink, out), channel_logger(url) as (logger, _):
        logger.info("enclave server listening", extra={"fields": {"listen": "vsock://any:5000"}})
        _wait_for(lambda: sink.lines >= 1)
    line = _lines(out)[0]
    assert line["msg"] == "enclave server listening"
    assert line["listen"] == "vsock://any:5000"
    assert line["source"] == "enclave"
    assert {"ts", "level", "logger"} <= line.keys()


def test_a_card_number_in_a_message_arrives_redacted() -> None:
    with running_sink() as (url, sink, out), channel_logger(url) as (logger, _):
        logger.warning("oops %s and %s", VISA_TEST, "4111 1111 1111 1111", extra={"fields": {"n": AMEX_TEST}})
        _wait_for(lambda: sink.lines >= 1)
    raw = out.getvalue()
    assert "1111" * 4 not in SEPARATORS.sub("", raw)
    assert AMEX_TEST not in raw
    assert _lines(out)[0]["msg"] == "oops [redacted] and [redacted]"


def test_counters_arrive_when_the_channel_closes() -> None:
    with running_sink() as (url, _sink, out):
        with channel_logger(url) as (_, handler):
            handler.handle(_record("app.enclave.handler", "decrypted", id=1, kms_ms=3.0, ms=4.0))
            handler.handle(_record("app.enclave.handler", "decrypt refused", id=2, code="not_a_card"))
        _wait_for(lambda: any(line.get("kind") == "counters" for line in _lines(out)))
    counters = next(line for line in _lines(out) if line.get("kind") == "counters")
    assert counters["decrypt_ok"] == 1
    assert counters["decrypt_failed"] == {"not_a_card": 1}
    assert counters["decrypt_ms_sum"] == 4.0
    assert counters["source"] == "enclave"


def test_counters_are_sent_periodically(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_channel, "COUNTERS_INTERVAL_S", 0.1)
    with running_sink() as (url, sink, out), channel_logger(url):
        _wait_for(lambda: sink.lines >= 2)
    assert [line["kind"] for line in _lines(out)[:2]] == ["counters", "counters"]


def test_lines_logged_before_the_sink_starts_are_delivered_once_it_listens() -> None:
    probe = transport.listen(transport.Endpoint("tcp", "127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with channel_logger(f"tcp://127.0.0.1:{port}") as (logger, _):
        logger.info("early line")
        time.sleep(0.3)  # a few failed connects
        out = io.StringIO()
        sink = LogSink(transport.listen(transport.Endpoint("tcp", "127.0.0.1", port)), out)
        thread = threading.Thread(target=sink.serve_forever, daemon=True)
        thread.start()
        _wait_for(lambda: sink.lines >= 1)
        sink.stop()
        thread.join(5)
    assert _lines(out)[0]["msg"] == "early line"


def test_logging_never_blocks_when_the_sink_is_down_and_drops_the_oldest() -> None:
    probe = transport.listen(transport.Endpoint("tcp", "127.0.0.1", 0))
    url = transport.bound_url(probe, "tcp")
    probe.close()  # nobody listens there any more
    channel = LogChannel(url, queue_lines=100)
    channel.start()
    for index in range(10_000):  # returning at all is the point: offer() never waits for the sink
        channel.offer({"msg": f"line {index}"})
    channel.close(flush_s=0.2)
    assert channel.dropped >= 9_900
    assert channel.sent == 0


def test_the_enclave_keeps_serving_while_its_log_sink_is_stuck() -> None:
    # A sink that accepts and never reads: the sender thread blocks, the enclave must not.
    stuck = transport.listen(transport.Endpoint("tcp", "127.0.0.1", 0))
    with channel_logger(transport.bound_url(stuck, "tcp")) as (logger, handler):

        def chatty_handler(request: Request) -> protocol.Response:
            for _ in range(200):
                logger.info("decrypted", extra={"fields": {"id": request.id, "pad": "x" * 500}})
            return protocol.Response(request.id, body={"status": "ok"})

        with running_server(chatty_handler) as (server_url, _):
            frames = b"".join(
                framing.encode_frame(protocol.encode_request(Request(i, Op.PING))) for i in range(50)
            )
            # Each read waits at most 1 s: a server held up by its logging would lose answers here.
            answers = roundtrip(server_url, frames, read_timeout_s=1.0)
        assert sorted(a.id for a in answers) == list(range(50))
        assert handler.channel.dropped > 0
    stuck.close()


class _StubDecryptor:
    """Answers from a script: a last-4 result, or a refusal with a code."""

    def __init__(self, outcomes: list[protocol.DecryptResult | DecryptError]) -> None:
        self._outcomes = outcomes

    def decrypt(self, _request: protocol.DecryptRequest) -> protocol.DecryptResult:
        outcome = self._outcomes.pop(0)
        if isinstance(outcome, DecryptError):
            raise outcome
        return outcome


def test_counters_count_what_the_real_handler_logs() -> None:
    outcomes: list[protocol.DecryptResult | DecryptError] = [
        protocol.DecryptResult("1111", kms_ms=8.0, enclave_ms=9.5),
        DecryptError(ErrorCode.ACCESS_DENIED, "the key policy refused this enclave"),
    ]
    handler = EnclaveHandler(_StubDecryptor(outcomes), nsm=None)  # type: ignore[arg-type]
    channel = LogChannel("tcp://127.0.0.1:9")
    capture = log_channel.ChannelHandler(channel)
    handler_log = logging.getLogger("app.enclave.handler")
    handler_log.addHandler(capture)
    handler_log.setLevel(logging.INFO)  # as logs.configure() sets it in the enclave
    body = protocol.decrypt_body(
        protocol.DecryptRequest(
            b"c", {"app": "x"}, "us-east-1", protocol.Credentials("AK", "SK", None), "alias/k"
        )
    )
    try:
        handler(Request(1, Op.DECRYPT, body))
        handler(Request(2, Op.DECRYPT, body))
    finally:
        handler_log.removeHandler(capture)
        handler_log.setLevel(logging.NOTSET)
    assert channel.counters.snapshot() == {
        "decrypt_ok": 1,
        "decrypt_failed": {"access_denied": 1},
        "decrypt_ms_sum": 9.5,
        "kms_ms_sum": 8.0,
    }


def test_the_per_card_line_is_counted_but_not_shipped() -> None:
    with running_sink() as (url, _sink, out), channel_logger(url) as (_, handler):
        handler.handle(_record("app.enclave.handler", "decrypted", id=1, kms_ms=3.0, ms=4.0))
        handler.handle(_record("app.enclave.handler", "decrypt refused", id=2, code="not_a_card"))
        _wait_for(lambda: any(line.get("msg") == "decrypt refused" for line in _lines(out)))
        assert handler.channel.counters.decrypt_ok == 1
        assert not any(line.get("msg") == "decrypted" for line in _lines(out))
