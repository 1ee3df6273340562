"""Comparison plots (PNG, matplotlib): cost vs quality with the Pareto front, and the
task's own breakdown — accuracy per label (routing), error types (tools), recall@k (RAG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: works under any backend, headless included

from workbench.comparison.runs import RunData


def pareto_front(cost: np.ndarray, score: np.ndarray) -> list[int]:
    """Indices of runs no other run beats on both cost (lower) and score (higher), cheapest first."""
    order = np.lexsort((-score, cost))
    front, best = [], -np.inf
    for i in order:
        if score[i] > best:
            front.append(int(i))
            best = score[i]
    return front


def cost_quality(board: pd.DataFrame, path: Path) -> Path:
    cost = board["seconds_per_example"].fillna(0).to_numpy(dtype=float)
    score = board["score"].to_numpy(dtype=float)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    err = np.vstack([score - board["ci_low"].to_numpy(dtype=float), board["ci_high"].to_numpy(dtype=float) - score])
    ax.errorbar(cost, score, yerr=np.nan_to_num(err), fmt="o", capsize=3, color="tab:blue", label="run (95% CI)")
    front = pareto_front(cost, score)
    ax.plot(cost[front], score[front], "--", color="tab:red", label="Pareto front")
    for x, y, label in zip(cost, score, board["run"]):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("seconds per example (evaluation)")
    ax.set_ylabel("score")
    ax.set_title("Cost vs quality")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def breakdown_frame(runs: list[RunData]) -> tuple[pd.DataFrame, str]:
    """(categories x runs, title) for the task of these runs."""
    task = runs[0].task
    if task == "routing":
        data = {r.label: r.table.groupby("gold")["score"].mean() for r in runs}
        return pd.DataFrame(data), "accuracy per label"
    prefix, title = {"tools": ("calls.", "share of calls by error type"),
                     "rag": ("retrieval.recall_at_", "retrieval recall@k")}.get(task, ("", ""))
    if not prefix:
        return pd.DataFrame(), ""
    data = {r.label: pd.Series({k.removeprefix(prefix): v for k, v in r.metrics.items() if k.startswith(prefix)})
            for r in runs}
    return pd.DataFrame(data), title


def breakdown(runs: list[RunData], path: Path) -> Path | None:
    frame, title = breakdown_frame(runs)
    if frame.empty:
        return None
    frame = frame.iloc[:40]  # readable at a glance: at most 40 categories
    fig = Figure(figsize=(8, max(3.0, 0.28 * len(frame) * max(1, len(runs)) ** 0.5)))
    ax = fig.subplots()
    frame.plot.barh(ax=ax, width=0.8)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def seed_scores(scores: list[float], path: Path, title: str, xlabel: str = "seed") -> Path:
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    ax.plot(range(1, len(scores) + 1), scores, "o")
    ax.axhline(float(np.mean(scores)), color="tab:red", linestyle="--", label=f"mean {np.mean(scores):.3f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
