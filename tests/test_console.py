"""Progress where stderr is not a terminal (CI logs, nohup): plain status lines while the work
runs, not silence until it ends."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from workbench.console import Reporter


def _reporter() -> tuple[Reporter, io.StringIO]:
    reporter = Reporter(quiet=False)
    buffer = io.StringIO()
    reporter.err = Console(file=buffer, force_terminal=False, width=160)
    reporter.plain_every = 0.05
    return reporter, buffer


def test_a_phase_prints_its_status_and_lm_calls_while_it_runs():
    reporter, buffer = _reporter()
    calls = [0]
    with reporter.phase("compiling with finetune", lambda: calls[0]) as status:
        status("step 3/40 · loss 1.234 · eta 0:05:00")
        calls[0] = 7
        time.sleep(0.3)
        assert "compiling with finetune · 7 LM calls · step 3/40 · loss 1.234" in buffer.getvalue()  # during
    lines = buffer.getvalue().splitlines()
    assert lines[-1].startswith("compiling with finetune · 7 LM calls · step 3/40") and lines[-1].endswith("· done")


def test_a_failed_phase_does_not_say_done():
    reporter, buffer = _reporter()
    with pytest.raises(RuntimeError), reporter.phase("compiling", None):
        raise RuntimeError("boom")
    assert "done" not in buffer.getvalue()


def test_an_evaluation_prints_counts_score_and_eta_then_the_last_item():
    reporter, buffer = _reporter()
    with reporter.progress("evaluating on test", 3) as update:
        update(1, 1.0, 1)
        time.sleep(0.06)
        update(2, 0.5, 2)
        update(3, 0.667, 3)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("evaluating on test 2/3 · score 0.500 · 2 LM calls") and "eta" in lines[0]
    assert lines[-1].startswith("evaluating on test 3/3 · score 0.667 · 3 LM calls") and "eta" not in lines[-1]
    assert len(lines) == 2  # item 3 came too soon after item 2 for a line of its own, but it is the last


def test_a_notebook_keeps_the_live_display_instead_of_plain_lines():
    """In Jupyter rich is not a terminal yet draws its live bars (as a widget): no plain lines there.
    (Only the decision is checked: drawing a widget needs a running kernel.)"""
    reporter, _ = _reporter()
    assert reporter._plain()
    reporter.err = Console(file=io.StringIO(), force_jupyter=True, width=160)
    assert not reporter.err.is_terminal and not reporter._plain()
    reporter.err = Console(file=io.StringIO(), force_terminal=True, width=160)
    assert not reporter._plain()
