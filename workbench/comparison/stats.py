"""Paired statistics for two runs scored on the same examples.

- `paired_bootstrap_ci`: percentile bootstrap interval of the mean per-example difference.
- `mcnemar`: exact McNemar test for 0/1 scores (a binomial test on the discordant pairs).
- `permutation_test`: paired sign-flip permutation test of the mean difference, for
  scores that are not 0/1 (token F1, ...).
`paired_test` picks the right one. Identical runs give a difference of 0 and p = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from workbench.stats import bootstrap_ci


@dataclass(frozen=True)
class PairedResult:
    mean_a: float
    mean_b: float
    difference: float  # b - a
    ci: tuple[float, float]
    test: str
    p_value: float
    better: int  # examples where b scores higher
    worse: int
    n: int

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def is_binary(*arrays) -> bool:
    return all(np.isin(np.asarray(a, dtype=float), (0.0, 1.0)).all() for a in arrays)


def paired_bootstrap_ci(a, b, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    return bootstrap_ci(np.asarray(b, dtype=float) - np.asarray(a, dtype=float), confidence=confidence,
                        resamples=resamples, seed=seed)


def mcnemar(a, b) -> tuple[int, int, float]:
    """(b right & a wrong, a right & b wrong, exact two-sided p)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    gained, lost = int(((b == 1) & (a == 0)).sum()), int(((a == 1) & (b == 0)).sum())
    discordant = gained + lost
    if discordant == 0:
        return gained, lost, 1.0
    return gained, lost, float(min(1.0, 2 * binom.cdf(min(gained, lost), discordant, 0.5)))


def permutation_test(a, b, *, resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p of the mean paired difference under random sign flips."""
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    observed = abs(diffs.mean()) if diffs.size else 0.0
    if diffs.size == 0 or not np.any(diffs):
        return 1.0
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, resamples, 1000):
        signs = rng.choice((-1.0, 1.0), size=(min(1000, resamples - start), diffs.size))
        extreme += int((np.abs((signs * diffs).mean(axis=1)) >= observed - 1e-12).sum())
    return (extreme + 1) / (resamples + 1)


def paired_test(a, b, *, seed: int = 0) -> PairedResult:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired scores must have the same length")
    if is_binary(a, b):
        test, (_, _, p) = "McNemar (exact)", mcnemar(a, b)
    else:
        test, p = "paired permutation", permutation_test(a, b, seed=seed)
    return PairedResult(mean_a=float(a.mean()) if a.size else float("nan"),
                        mean_b=float(b.mean()) if b.size else float("nan"),
                        difference=float((b - a).mean()) if a.size else float("nan"),
                        ci=paired_bootstrap_ci(a, b, seed=seed), test=test, p_value=p,
                        better=int((b > a).sum()), worse=int((b < a).sum()), n=int(a.size))
