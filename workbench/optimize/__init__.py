"""Optimizers: each registered factory takes a `CompileContext` plus keyword parameters from
the spec's `optimizer.params` and returns the compiled program."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the package is imported by spec checks (rules.py), which must not load DSPy
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
    checkpoint_dir: Path | None = None  # the run's folder for optimizer checkpoints (GEPA's), kept for --resume
    status: Callable[[str], None] | None = None  # a line of progress for the compile spinner (loss, ETA)
    # Switch the run's LM to a LoRA adapter (path, sha256): what `finetune` trained. The runner
    # provides it; the evaluation, later steps and the logged spec then use the adapter.
    use_lora: Callable[[Path, str], None] | None = None
    finetune_report: dict[str, Any] | None = None  # what training did, logged with the run


# What each optimizer chooses its program by: these on the dev split; COPRO and SIMBA by their
# score on the training examples they are given, an in-sample score never reported as a dev score.
SELECTS_ON_DEV = frozenset({"MIPROv2", "GEPA", "BootstrapFewShotWithRandomSearch"})
SELECTS_ON_TRAIN = frozenset({"COPRO", "SIMBA"})


def optimizer_seed(spec) -> int:
    """optimizer.seed, else dataset.seed."""
    return spec.optimizer.seed if spec.optimizer.seed is not None else spec.dataset.seed


def dev_score(compiled: Any, name: str | None = None) -> float | None:
    """The dev score the optimizer chose its program by, where DSPy reports it (MIPROv2's
    `score`, random search's `candidate_programs`, GEPA's `detailed_results`); None for an
    optimizer that chose on train. DSPy's evaluator reports percentages, the workbench's metrics 0..1."""
    if name in SELECTS_ON_TRAIN:
        return None
    value = getattr(compiled, "score", None)
    candidates = getattr(compiled, "candidate_programs", None)
    if value is None and candidates:
        value = max((c.get("score") for c in candidates if isinstance(c, dict) and c.get("score") is not None),
                    default=None)
    details = getattr(compiled, "detailed_results", None)
    if value is None and details is not None:
        try:
            value = details.val_aggregate_scores[details.best_idx]
        except (AttributeError, IndexError, TypeError):
            value = None
    if not isinstance(value, (int, float)) or value != value:
        return None
    return float(value) / 100 if value > 1 else float(value)
