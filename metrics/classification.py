"""Classification metrics for routing: accuracy, macro-F1, confusion matrix.

A per-example metric takes `(example, prediction, trace=None)` and returns a float, or a
`dspy.Prediction(score=..., feedback=...)` for optimizers that learn from text (GEPA).
A summary takes the evaluation table (columns `gold`, `predicted`, `score`, ...) and the
dataset view (its `labels`), and returns metrics, tables and figures for tracking.
"""

from __future__ import annotations

import dspy
import pandas as pd

from workbench.data import TaskData
from workbench.registry import metric, summary


def _label(prediction) -> str | None:
    return getattr(prediction, "label", None) if prediction is not None else None


@metric("accuracy")
def accuracy(example, prediction, trace=None) -> float:
    """1.0 when the predicted label equals the gold label."""
    return float(_label(prediction) == example.label)


@metric("accuracy_feedback")
def accuracy_feedback(example, prediction, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
    """Accuracy plus a sentence saying what went wrong, for reflective optimizers."""
    predicted = _label(prediction)
    if predicted == example.label:
        return dspy.Prediction(score=1.0, feedback=f"Correct: the message belongs to {example.label!r}.")
    return dspy.Prediction(score=0.0, feedback=(
        f"Wrong: predicted {predicted!r} but the message {example.text!r} belongs to {example.label!r}. "
        "Say what distinguishes these two labels in the instructions."))


def per_label(table: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per label (a failed prediction counts as wrong)."""
    rows = []
    for label in labels:
        tp = int(((table.predicted == label) & (table.gold == label)).sum())
        fp = int(((table.predicted == label) & (table.gold != label)).sum())
        fn = int(((table.predicted != label) & (table.gold == label)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"label": label, "precision": precision, "recall": recall, "f1": f1, "support": tp + fn})
    return pd.DataFrame(rows)


@summary("macro_f1")
def macro_f1(table: pd.DataFrame, data: TaskData) -> dict:
    """Unweighted mean F1 over the labels present in the gold set."""
    scores = per_label(table, data.labels)
    present = scores[scores.support > 0]
    value = float(present.f1.mean()) if len(present) else 0.0
    return {"metrics": {"macro_f1": value}, "tables": {"per_label.csv": scores}}


@summary("confusion_matrix")
def confusion_matrix(table: pd.DataFrame, data: TaskData) -> dict:
    """Counts of gold (rows) x predicted (columns); failed predictions land in '<failed>'."""
    labels = data.labels
    predicted = table.predicted.fillna("<failed>").replace("", "<failed>")
    columns = list(labels) + (["<failed>"] if (predicted == "<failed>").any() else [])
    matrix = pd.crosstab(pd.Categorical(table.gold, categories=labels),
                         pd.Categorical(predicted, categories=columns), dropna=False)
    matrix.index.name, matrix.columns.name = "gold", "predicted"
    return {"metrics": {}, "tables": {"confusion_matrix.csv": matrix}, "figures": {"confusion_matrix.png": _plot(matrix)}}


def _plot(matrix: pd.DataFrame):
    import matplotlib.pyplot as plt

    size = max(5.0, 0.35 * len(matrix.columns) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    values = matrix.to_numpy()
    ax.imshow(values, cmap="Blues")
    ticks = len(matrix.columns) <= 40
    if ticks:
        ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(matrix.index)), matrix.index, fontsize=8)
    if values.size <= 400:
        for (i, j), v in pd.DataFrame(values).stack().items():
            if v:
                ax.text(j, i, int(v), ha="center", va="center", fontsize=7,
                        color="white" if v > values.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    plt.close(fig)  # returned, not shown: a notebook displays it once, where asked
    return fig
