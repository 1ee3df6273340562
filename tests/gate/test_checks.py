"""The gate's checks on hand-made runs: exact expectations for each threshold and for runs
answered from the response cache (tokens scaled by requests, latency not judged)."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.comparison.runs import RunData
from workbench.errors import UserError
from workbench.gate.checks import FAILED, PASSED, SKIPPED, Thresholds, gate, tokens_per_example
from workbench.gate.report import junit_xml, markdown


def _run(scores, *, errors=None, seconds=0.5, metrics=None, run_id="r") -> RunData:
    n = len(scores)
    table = pd.DataFrame({"id": [f"x{i}" for i in range(n)], "text": [f"m{i}" for i in range(n)], "gold": "a",
                          "predicted": ["a" if s else "b" for s in scores], "score": scores,
                          "error_type": errors or [""] * n, "seconds": [seconds] * n})
    base = {"score": sum(scores) / n, "lm_calls": n, "lm_requests": n, "lm_cache_hits": 0, "prompt_tokens": 100.0 * n,
            "completion_tokens": 5.0 * n}
    return RunData(run_id, run_id, "e", "FINISHED", {**base, **(metrics or {})}, {"workbench.task": "routing"}, {},
                   table)


def _status(result) -> dict[str, str]:
    return {c.name: c.status for c in result.checks}


def test_identical_runs_pass_everything():
    result = gate(_run([1, 0] * 20), _run([1, 0] * 20, run_id="c"))
    assert result.passed and set(_status(result).values()) == {PASSED}
    assert result.paired.p_value == 1.0


def test_failure_rate_allows_the_baselines_share():
    errors = ["parse"] * 3 + [""] * 37
    assert _status(gate(_run([1] * 40), _run([0] * 3 + [1] * 37, errors=errors)))["failure_rate"] == FAILED
    assert _status(gate(_run([0] * 3 + [1] * 37, errors=errors), _run([0] * 3 + [1] * 37, errors=errors)))[
        "failure_rate"] == PASSED
    loose = Thresholds(max_failure_rate=0.1)
    assert _status(gate(_run([1] * 40), _run([0] * 3 + [1] * 37, errors=errors), loose))["failure_rate"] == PASSED


def test_cost_scales_cached_runs_by_their_requests():
    # 10 of 40 requests reached the model (30 cache hits): 105 tokens per call x 40 requests / 40 examples
    cached = _run([1] * 40, metrics={"lm_calls": 10, "lm_cache_hits": 30, "prompt_tokens": 1000.0,
                                     "completion_tokens": 50.0})
    assert tokens_per_example(cached) == pytest.approx(105.0)
    assert _status(gate(_run([1] * 40), cached))["cost_per_example"] == PASSED
    everything_cached = _run([1] * 40, metrics={"lm_calls": 0, "lm_cache_hits": 40, "prompt_tokens": 0.0,
                                                "completion_tokens": 0.0})
    status = _status(gate(_run([1] * 40), everything_cached))
    assert status["cost_per_example"] == SKIPPED and status["latency"] == SKIPPED
    longer = _run([1] * 40, metrics={"prompt_tokens": 200.0 * 40})
    assert _status(gate(_run([1] * 40), longer))["cost_per_example"] == FAILED


def test_latency_fails_beyond_its_allowance():
    assert _status(gate(_run([1] * 40), _run([1] * 40, seconds=0.7)))["latency"] == PASSED
    assert _status(gate(_run([1] * 40), _run([1] * 40, seconds=0.8)))["latency"] == FAILED


def test_significance_and_direction():
    worse = gate(_run([1] * 40), _run([1] * 30 + [0] * 10))
    assert _status(worse)["score"] == FAILED and worse.paired.p_value < 0.05
    better = gate(_run([1] * 30 + [0] * 10), _run([1] * 40))
    assert _status(better)["score"] == PASSED and "better" in better.checks[0].message
    with pytest.raises(UserError, match="different examples"):
        gate(_run([1] * 40), _run([1] * 39))


def test_reports_carry_each_check():
    result = gate(_run([1] * 40), _run([1] * 30 + [0] * 10, run_id="c"))
    xml = junit_xml(result, suite="s", seconds=1.0)
    assert xml.count("<testcase") == 4 and xml.count("<failure") == 1 and 'name="score"' in xml
    text = markdown(result, baseline_ref="models:/x@champion")
    assert "❌" in text and "models:/x@champion" in text and text.count("| x") >= 10  # ten worst examples listed
    error = junit_xml(None, suite="s", seconds=1.0, error="the candidate run failed: boom")
    assert "<error" in error and 'errors="1"' in error
