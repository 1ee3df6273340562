"""Classification metrics and bootstrap intervals on hand-checked and synthetic cases."""

from __future__ import annotations

from types import SimpleNamespace

import dspy
import numpy as np
import pandas as pd
import pytest

from metrics.classification import accuracy, accuracy_feedback, confusion_matrix, macro_f1, per_label
from workbench.stats import bootstrap_ci


def _table(gold, predicted):
    return pd.DataFrame({"gold": gold, "predicted": predicted,
                         "score": [float(g == p) for g, p in zip(gold, predicted)]})


def test_accuracy_and_feedback():
    example = dspy.Example(text="fly", label="travel")
    assert accuracy(example, dspy.Prediction(label="travel")) == 1.0
    assert accuracy(example, dspy.Prediction(label="banking")) == 0.0
    assert accuracy(example, None) == 0.0
    wrong = accuracy_feedback(example, dspy.Prediction(label="banking"))
    assert wrong.score == 0.0 and "'banking'" in wrong.feedback and "'travel'" in wrong.feedback


def test_macro_f1_hand_case():
    # a: tp=2 fp=1 fn=0 -> p=2/3 r=1 f1=0.8 ; b: tp=1 fp=0 fn=1 -> p=1 r=.5 f1=2/3 ; c: never gold, predicted never
    table = _table(["a", "a", "b", "b"], ["a", "a", "a", "b"])
    out = macro_f1(table, SimpleNamespace(labels=["a", "b", "c"]))
    assert out["metrics"]["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    scores = per_label(table, ["a", "b", "c"]).set_index("label")
    assert scores.loc["a", "precision"] == pytest.approx(2 / 3) and scores.loc["b", "recall"] == 0.5
    assert scores.loc["c", "support"] == 0


def test_confusion_matrix_counts_failures():
    table = _table(["a", "a", "b"], ["a", None, "a"])
    matrix = confusion_matrix(table, SimpleNamespace(labels=["a", "b"]))["tables"]["confusion_matrix.csv"]
    assert matrix.loc["a", "a"] == 1 and matrix.loc["a", "<failed>"] == 1 and matrix.loc["b", "a"] == 1
    assert int(matrix.to_numpy().sum()) == 3


def test_bootstrap_ci_degenerate_cases():
    assert bootstrap_ci([1.0] * 50) == (1.0, 1.0)
    assert bootstrap_ci([0.4]) == (0.4, 0.4)
    low, high = bootstrap_ci([])
    assert np.isnan(low) and np.isnan(high)


def test_bootstrap_ci_coverage_on_synthetic_data():
    """A 95% interval should contain the true mean in roughly 95% of repeated samples."""
    rng = np.random.default_rng(7)
    true_p, hits, trials = 0.7, 0, 200
    for i in range(trials):
        sample = (rng.random(150) < true_p).astype(float)
        low, high = bootstrap_ci(sample, resamples=1000, seed=i)
        hits += low <= true_p <= high
    assert 0.88 <= hits / trials <= 0.99
