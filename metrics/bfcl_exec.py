"""Execution match for BFCL exec_*: run the predicted call and the accepted call, compare.

Both calls run through the sandbox (`workbench/tools/sandbox.py`), so a predicted call
that raises, hangs or returns junk scores 0 with its reason; it never stops the run.
Results are compared as BFCL's result type asks: `exact_match` and `real_time_match`
(numbers within a relative 1e-6, resp. 20%; strings and structures equal), and
`structural_match` (same type and shape, e.g. the same dict keys). The accepted call's
result is computed once per call string.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import dspy

from workbench.registry import metric
from workbench.tools.arith import parse_call
from workbench.tools.sandbox import Observation, call_tool

TOLERANCE = {"exact_match": 1e-6, "real_time_match": 0.2}


def results_match(predicted: Any, gold: Any, kind: str = "exact_match") -> bool:
    if kind == "structural_match":
        if isinstance(gold, dict):
            return isinstance(predicted, dict) and set(predicted) == set(gold)
        if isinstance(gold, list):
            return isinstance(predicted, list) and len(predicted) == len(gold)
        return type(predicted) is type(gold) or (isinstance(predicted, (int, float)) and isinstance(gold, (int, float)))
    if isinstance(gold, bool) or isinstance(predicted, bool):
        return predicted is gold
    if isinstance(gold, (int, float)) and isinstance(predicted, (int, float)):
        return math.isclose(predicted, gold, rel_tol=TOLERANCE.get(kind, 1e-6), abs_tol=1e-9)
    if isinstance(gold, list) and isinstance(predicted, list):
        return len(gold) == len(predicted) and all(results_match(p, g, kind) for p, g in zip(predicted, gold))
    if isinstance(gold, dict) and isinstance(predicted, dict):
        return set(gold) == set(predicted) and all(results_match(predicted[k], gold[k], kind) for k in gold)
    return predicted == gold


@functools.lru_cache(maxsize=1024)
def gold_result(call_text: str) -> Observation:
    call = parse_call(call_text)
    return call_tool(call["name"], call["arguments"])


def execution_outcome(call: dict | None, gold_calls: list[str], kind: str) -> tuple[bool, str]:
    """(matched, reason)."""
    if not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
        return False, "unparseable call"
    observed = call_tool(str(call.get("name")), call["arguments"])
    if not observed.ok:
        return False, f"the call failed: {observed.error}"
    for text in gold_calls:
        expected = gold_result(text)
        if expected.ok and results_match(observed.value, expected.value, kind or "exact_match"):
            return True, "same result"
    return False, f"result {observed.text(120)} differs from the accepted call's"


def _gold(example) -> list[str]:
    value = example.gold_calls
    return json.loads(value) if isinstance(value, str) else list(value)


@metric("exec_match")
def exec_match(example, prediction, trace=None) -> float:
    """1.0 when running the predicted call gives the accepted call's result."""
    call = getattr(prediction, "call", None) if prediction is not None else None
    return float(execution_outcome(call, _gold(example), example.get("result_type", "exact_match"))[0])


@metric("exec_match_feedback")
def exec_match_feedback(example, prediction, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
    """Execution match plus why it failed, for reflective optimizers (GEPA)."""
    call = getattr(prediction, "call", None) if prediction is not None else None
    gold = _gold(example)
    matched, reason = execution_outcome(call, gold, example.get("result_type", "exact_match"))
    feedback = "Correct: same result as the accepted call." if matched else f"{reason}. An accepted call: {gold[0]}"
    return dspy.Prediction(score=float(matched), feedback=feedback)
