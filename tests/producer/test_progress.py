from __future__ import annotations

import io

from app.producer.progress import Progress, render, should_show


def test_render_draws_a_proportional_bar() -> None:
    assert render("sending", 5, 10) == "sending [" + "#" * 15 + "." * 15 + "] 5/10"


def test_short_runs_off_a_terminal_show_nothing() -> None:
    stream = io.StringIO()
    progress = Progress("sending", 10, stream)
    progress.advance(10)
    progress.close()
    assert stream.getvalue() == ""


def test_long_runs_show_the_bar_even_off_a_terminal() -> None:
    assert should_show(100, io.StringIO())


def test_the_final_state_ends_with_a_newline() -> None:
    stream = io.StringIO()
    progress = Progress("sending", 200, stream)
    progress.advance(200)
    progress.close()
    assert stream.getvalue().endswith("200/200\n")
