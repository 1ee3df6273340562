"""Optimizers: each registered factory takes a `CompileContext` plus keyword parameters from
the spec's `optimizer.params` and returns the compiled program."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy


@dataclass
class CompileContext:
    student: dspy.Module
    trainset: list[dspy.Example]
    valset: list[dspy.Example]
    metric: Callable[..., Any]          # returns a float (wrapped for DSPy)
    feedback_metric: Callable[..., Any]  # returns dspy.Prediction(score, feedback) for GEPA
    lm: dspy.LM
    prompt_lm: dspy.LM                   # for writing instructions: the task LM with more max_tokens
    reflection_lm: dspy.LM               # GEPA's; prompt_lm unless the spec names one
    seed: int
    threads: int
    source: str = "<spec>"
