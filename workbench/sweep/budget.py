"""Sweep budgets: LM calls, tokens, dollars and wall time, shared by every worker.

Each trial records what it has spent so far as Optuna user attributes (after every
evaluation increment), so any worker can sum the whole study's spend from the storage.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import optuna

from workbench.errors import UserError

SPEND_KEYS = ("lm_calls", "tokens", "cost_usd")


@dataclass
class Spent:
    lm_calls: float = 0.0
    tokens: float = 0.0
    cost_usd: float = 0.0

    def __add__(self, other: Spent) -> Spent:
        return Spent(self.lm_calls + other.lm_calls, self.tokens + other.tokens, self.cost_usd + other.cost_usd)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Budget:
    max_lm_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    deadline: float | None = None  # epoch seconds: the driver's start + --timeout

    def __post_init__(self) -> None:
        for name in ("max_lm_calls", "max_tokens", "max_cost_usd"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"must be greater than 0 (got {value})", field="--" + name.replace("_", "-"))

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> Budget:
        return cls(**{k: attrs.get(k) for k in ("max_lm_calls", "max_tokens", "max_cost_usd", "deadline")})

    def as_attrs(self) -> dict[str, Any]:
        return asdict(self)

    def exceeded(self, spent: Spent, now: float | None = None) -> str | None:
        """Why the sweep must stop now, or None."""
        now = time.time() if now is None else now
        if self.max_lm_calls is not None and spent.lm_calls >= self.max_lm_calls:
            return f"LM-call budget reached ({spent.lm_calls:.0f} of {self.max_lm_calls})"
        if self.max_tokens is not None and spent.tokens >= self.max_tokens:
            return f"token budget reached ({spent.tokens:.0f} of {self.max_tokens})"
        if self.max_cost_usd is not None and spent.cost_usd >= self.max_cost_usd:
            return f"cost budget reached (${spent.cost_usd:.4f} of ${self.max_cost_usd:.4f})"
        if self.deadline is not None and now >= self.deadline:
            return "time budget reached (--timeout)"
        return None

    def describe(self) -> str:
        parts = [f"{self.max_lm_calls} LM calls" if self.max_lm_calls else "",
                 f"{self.max_tokens} tokens" if self.max_tokens else "",
                 f"${self.max_cost_usd:g}" if self.max_cost_usd else "",
                 f"until {time.strftime('%H:%M:%S', time.localtime(self.deadline))}" if self.deadline else ""]
        return ", ".join(p for p in parts if p) or "none"


def trial_spent(trial: optuna.trial.FrozenTrial) -> Spent:
    attrs = trial.user_attrs
    return Spent(*(float(attrs.get(k, 0.0)) for k in SPEND_KEYS))


def study_spent(study: optuna.Study, *, skip: int | None = None) -> Spent:
    """What every trial of the study has spent (running ones up to their last increment)."""
    total = Spent()
    for trial in study.get_trials(deepcopy=False):
        if trial.number != skip:
            total = total + trial_spent(trial)
    return total


def estimate(study: optuna.Study, trials_left: int, eval_items: int) -> str:
    """A pre-run estimate: from the study's finished trials if it has any, else a lower bound."""
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if done:
        per = Spent()
        for t in done:
            per = per + trial_spent(t)
        n = len(done)
        seconds = sum((t.duration.total_seconds() if t.duration else 0.0) for t in done) / n
        return (f"estimate for {trials_left} more trials (mean of {n} finished): "
                f"{per.lm_calls / n * trials_left:.0f} LM calls, {per.tokens / n * trials_left:.0f} tokens, "
                f"${per.cost_usd / n * trials_left:.4f}, {seconds * trials_left / 60:.1f} min of one worker")
    return (f"estimate for {trials_left} trials: at least {eval_items * trials_left} LM calls "
            f"({eval_items} evaluation items each, plus any the optimizer makes while compiling); "
            "tokens and time are measured from the first trial")
