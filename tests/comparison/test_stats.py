"""The comparison statistics on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.comparison.plots import pareto_front
from workbench.comparison.stats import mcnemar, paired_bootstrap_ci, paired_test, permutation_test


def test_identical_runs_differ_by_zero_with_p_one():
    scores = np.array([1, 0, 1, 1, 0, 1], dtype=float)
    result = paired_test(scores, scores)
    assert result.difference == 0 and result.p_value == 1.0 and result.ci == (0.0, 0.0)
    assert result.test.startswith("McNemar") and result.better == result.worse == 0
    f1 = np.array([0.2, 0.5, 0.9])
    assert paired_test(f1, f1).p_value == 1.0 and paired_test(f1, f1).test == "paired permutation"


def test_mcnemar_exact_p_value_by_hand():
    # 10 examples only b gets right, 2 only a gets right, 8 both right: p = 2 * P(X <= 2), X ~ Bin(12, 1/2)
    a = np.array([0] * 10 + [1] * 2 + [1] * 8, dtype=float)
    b = np.array([1] * 10 + [0] * 2 + [1] * 8, dtype=float)
    gained, lost, p = mcnemar(a, b)
    assert (gained, lost) == (10, 2)
    assert p == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 0.03857
    assert paired_test(a, b).significant and paired_test(a, b).better == 10


def test_permutation_test_sees_a_real_shift_and_not_noise():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 200)
    assert permutation_test(a, a + 0.1) < 0.001
    noise = rng.normal(0, 0.2, 200)
    assert permutation_test(a, a + noise - noise.mean()) > 0.5  # mean difference exactly 0


def test_paired_bootstrap_ci_covers_the_true_difference_about_95_percent():
    rng = np.random.default_rng(7)
    covered, trials = 0, 200
    for seed in range(trials):
        a = rng.binomial(1, 0.6, 150).astype(float)
        b = np.where(rng.uniform(size=150) < 0.9, a, 1 - a)  # true mean difference: 0.1 * (1 - 2 * 0.6) = -0.02
        low, high = paired_bootstrap_ci(a, b, resamples=1000, seed=seed)
        covered += low <= -0.02 <= high
    assert 0.88 <= covered / trials <= 0.99, covered / trials


def test_pareto_front_keeps_only_undominated_runs():
    cost = np.array([1.0, 2.0, 3.0, 2.5])
    score = np.array([0.5, 0.7, 0.9, 0.6])
    assert pareto_front(cost, score) == [0, 1, 2]
