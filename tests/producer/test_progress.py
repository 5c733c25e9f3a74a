"""The progress bar: drawn on a terminal, nothing at all anywhere else."""

from __future__ import annotations

import io

import pytest

from app.producer.progress import progress, steps


class Terminal(io.StringIO):
    """A stream that says it is a TTY, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def test_off_a_terminal_nothing_is_written() -> None:
    stream = io.StringIO()
    with progress("queueing cards", 1000, stream) as advance:
        for _ in range(100):
            advance(10)
    assert stream.getvalue() == ""


def test_on_a_terminal_the_bar_shows_the_label_and_the_total() -> None:
    stream = Terminal()
    with progress("queueing cards", 1000, stream) as advance:
        advance(10)
    drawn = stream.getvalue()
    assert "queueing cards" in drawn
    assert "/1000" in drawn


def test_the_bar_is_closed_when_the_step_fails() -> None:
    stream = Terminal()
    with pytest.raises(RuntimeError), progress("queueing cards", 10, stream):
        raise RuntimeError("SQS refused the batch")
    # leave=False: closing erases the bar, so the error line that follows starts on a clean line
    assert stream.getvalue().endswith("\r")


def test_steps_show_the_current_step_on_a_terminal_only() -> None:
    terminal, file = Terminal(), io.StringIO()
    for stream in (terminal, file):
        with steps(2, stream) as doing:
            doing("checking the services")
            doing("pinging the enclave")
    assert "pinging the enclave (1/2)" in terminal.getvalue()
    assert file.getvalue() == ""
