"""The gate's checks: is a candidate run worse than its baseline on the same examples?

Each check compares the two runs on one thing a pull request can break — the score (by
the paired test of `workbench compare`, so "worse" means significantly worse on the same
items, not noise), the failure rate, the cost per example and the latency — and says
`passed`, `failed` or `skipped` (with why: nothing to measure). Pure functions of two
`RunData`; no MLflow, no LM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.comparison.report import aligned_scores
from workbench.comparison.runs import RunData
from workbench.comparison.stats import PairedResult, paired_test

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
CACHED_SHARE_FOR_LATENCY = 0.5  # a run answered mostly from the response cache has no latency to judge


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.05
    max_drop: float | None = None          # a drop in mean score beyond this fails even when not significant
    max_failure_rate: float = 0.02         # allowed failures (errors + parse errors), or the baseline's if higher
    max_cost_increase: float = 0.25        # tokens per example may grow by this share
    max_latency_increase: float = 0.5      # median seconds per example may grow by this share


@dataclass
class Check:
    name: str
    status: str
    message: str
    baseline: float | None = None
    candidate: float | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAILED


@dataclass
class GateResult:
    baseline: RunData
    candidate: RunData
    paired: PairedResult
    checks: list[Check] = field(default_factory=list)
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)


def _failure_rate(run: RunData) -> float:
    table = run.table
    if not len(table) or "error_type" not in table:
        return 0.0
    return float((table["error_type"].fillna("") != "").mean())


def tokens_per_example(run: RunData) -> float | None:
    """Prompt + completion tokens per evaluated example. Cache hits report no tokens, so
    tokens per call that reached the model are scaled by the requests per example; None
    when no call reached the model (everything came from the cache) or nothing was counted."""
    m = run.metrics
    n = len(run.table)
    calls = m.get("lm_calls", 0.0)
    tokens = m.get("prompt_tokens", 0.0) + m.get("completion_tokens", 0.0)
    if not n or not calls or not tokens:
        return None
    requests = m.get("lm_requests", calls)
    return tokens / calls * requests / n


def cached_share(run: RunData) -> float | None:
    m = run.metrics
    if "lm_requests" not in m or not m["lm_requests"]:
        return None
    return m.get("lm_cache_hits", 0.0) / m["lm_requests"]


def median_seconds(run: RunData) -> float | None:
    if "seconds" not in run.table or not len(run.table):
        return None
    return float(np.median(run.table["seconds"].astype(float)))


def score_check(paired: PairedResult, t: Thresholds) -> Check:
    drop = -paired.difference
    summary = (f"{paired.mean_b:.4f} vs {paired.mean_a:.4f} on {paired.n} examples: {paired.difference:+.4f} "
               f"[{paired.ci[0]:+.4f}, {paired.ci[1]:+.4f}], {paired.test} p={paired.p_value:.3g}")
    if paired.difference < 0 and paired.p_value < t.alpha:
        return Check("score", FAILED, f"significantly worse: {summary} < alpha {t.alpha:g}", paired.mean_a, paired.mean_b)
    if t.max_drop is not None and drop > t.max_drop:
        return Check("score", FAILED, f"dropped {drop:.4f} > --max-drop {t.max_drop:g}: {summary}",
                     paired.mean_a, paired.mean_b)
    word = "better" if paired.difference > 0 and paired.p_value < t.alpha else "not significantly worse"
    return Check("score", PASSED, f"{word}: {summary}", paired.mean_a, paired.mean_b)


def failure_check(baseline: RunData, candidate: RunData, t: Thresholds) -> Check:
    a, b = _failure_rate(baseline), _failure_rate(candidate)
    allowed = max(a, t.max_failure_rate)
    n = len(candidate.table)
    text = f"{b:.1%} of {n} examples failed (errors and parse errors), baseline {a:.1%}, allowed {allowed:.1%}"
    return Check("failure_rate", FAILED if b > allowed + 1e-12 else PASSED, text, a, b)


def cost_check(baseline: RunData, candidate: RunData, t: Thresholds) -> Check:
    a, b = tokens_per_example(baseline), tokens_per_example(candidate)
    if a is None or b is None:
        which = "baseline" if a is None else "candidate"
        return Check("cost_per_example", SKIPPED, f"the {which} made no counted LM call (all answers came from the "
                     "response cache, or the backend counts no tokens)", a, b)
    limit = a * (1 + t.max_cost_increase)
    text = f"{b:.1f} tokens per example vs {a:.1f} ({b / a - 1:+.0%}; allowed {t.max_cost_increase:+.0%})"
    return Check("cost_per_example", FAILED if b > limit else PASSED, text, a, b)


def latency_check(baseline: RunData, candidate: RunData, t: Thresholds) -> Check:
    for run, which in ((baseline, "baseline"), (candidate, "candidate")):
        share = cached_share(run)
        if share is not None and share >= CACHED_SHARE_FOR_LATENCY:
            return Check("latency", SKIPPED, f"the {which} answered {share:.0%} of its LM requests from the response "
                         "cache: its latency says nothing about the model's")
    a, b = median_seconds(baseline), median_seconds(candidate)
    if a is None or b is None or a <= 0:
        return Check("latency", SKIPPED, "no per-example timings to compare", a, b)
    limit = a * (1 + t.max_latency_increase)
    text = f"median {b:.3f} s per example vs {a:.3f} s ({b / a - 1:+.0%}; allowed {t.max_latency_increase:+.0%})"
    return Check("latency", FAILED if b > limit else PASSED, text, a, b)


def gate(baseline: RunData, candidate: RunData, thresholds: Thresholds | None = None, seed: int = 0) -> GateResult:
    """All checks of `candidate` against `baseline` (UserError if they were not scored on the same examples)."""
    t = thresholds or Thresholds()
    sa, sb = aligned_scores(baseline, candidate)
    paired = paired_test(sa.to_numpy(), sb.to_numpy(), seed=seed)
    checks = [score_check(paired, t), failure_check(baseline, candidate, t), cost_check(baseline, candidate, t),
              latency_check(baseline, candidate, t)]
    return GateResult(baseline, candidate, paired, checks, t)
