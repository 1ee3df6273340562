"""Numeric answers (GSM8K): the predicted number equals the gold one."""

from __future__ import annotations

import math
import re

import dspy

from workbench.registry import metric

_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*|-?\.\d+")


def as_number(value) -> float | None:
    """A float from a number or from the last number in a string ("$1,234.50" -> 1234.5)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    found = _NUMBER.findall(str(value))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numbers_equal(predicted, gold) -> bool:
    p, g = as_number(predicted), as_number(gold)
    return p is not None and g is not None and math.isclose(p, g, rel_tol=1e-6, abs_tol=1e-9)


@metric("numeric_match")
def numeric_match(example, prediction, trace=None) -> float:
    """1.0 when the predicted answer is the gold number."""
    return float(numbers_equal(getattr(prediction, "answer", None), example.answer))


@metric("numeric_match_feedback")
def numeric_match_feedback(example, prediction, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
    """Numeric match plus what went wrong, for reflective optimizers (GEPA)."""
    answer = getattr(prediction, "answer", None)
    if numbers_equal(answer, example.answer):
        return dspy.Prediction(score=1.0, feedback="Correct.")
    got = "no number" if as_number(answer) is None else f"{as_number(answer):g}"
    return dspy.Prediction(score=0.0, feedback=f"Answered {got}; the answer is {example.answer}. A worked solution: "
                                               f"{getattr(example, 'solution', '')[:400]}")
