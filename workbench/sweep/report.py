"""What a sweep's parent run shows: the trials table, the best trial(s), the Pareto front,
parameter importances and the optimization history (matplotlib figures, also for notebooks)."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure

from workbench.search import SearchSpec
from workbench.sweep.study import is_surplus

State = optuna.trial.TrialState


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, objective values, spend, parameters, MLflow run id."""
    search = SearchSpec.model_validate(study.user_attrs["search"])
    names = [o.metric for o in search.objectives]
    rows = []
    for t in study.get_trials(deepcopy=False):
        if is_surplus(t):
            continue
        values = t.values if t.values is not None else [None] * len(names)
        row = {"trial": t.number, "state": t.state.name, **dict(zip(names, values, strict=True))}
        for key in ("lm_calls", "tokens", "cost_usd", "seconds", "worker", "pruned_by", "error", "mlflow_run_id"):
            if key not in row or row[key] is None:
                row[key] = t.user_attrs.get(key)
        row.update({f"param.{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def best_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The best trial (single objective) or the Pareto-optimal trials; [] before any finished."""
    if not study.get_trials(deepcopy=False, states=(State.COMPLETE,)):
        return []
    return [study.best_trial] if len(study.directions) == 1 else list(study.best_trials)


def pareto_mask(points: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """Rows not dominated by any other row (each column maximized or minimized)."""
    signed = np.where(maximize, points, -points)
    keep = np.ones(len(points), dtype=bool)
    for i, p in enumerate(signed):
        dominated = np.all(signed >= p, axis=1) & np.any(signed > p, axis=1)
        keep[i] = not dominated.any()
    return keep


def history_figure(frame: pd.DataFrame, metric: str, maximize: bool) -> Figure:
    fig = Figure(figsize=(7, 3.8))
    ax = fig.subplots()
    done = frame[frame.state == "COMPLETE"].sort_values("trial")
    pruned = frame[frame.state == "PRUNED"]
    ax.scatter(done.trial, done[metric], label="complete", color="tab:blue")
    if len(pruned):
        ax.scatter(pruned.trial, [ax.get_ylim()[0]] * len(pruned), marker="x", color="tab:gray", label="pruned")
    if len(done):
        values = done[metric].astype(float)
        best = values.cummax() if maximize else values.cummin()
        ax.step(done.trial, best, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("Optimization history")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def pareto_figure(frame: pd.DataFrame, quality: str = "score", cost: str = "lm_calls") -> Figure:
    """Quality vs cost of the finished trials, the non-dominated ones joined by a line."""
    fig = Figure(figsize=(7, 3.8))
    ax = fig.subplots()
    done = frame[frame.state == "COMPLETE"].dropna(subset=[quality, cost])
    if len(done):
        points = done[[quality, cost]].to_numpy(dtype=float)
        mask = pareto_mask(points, [True, False])
        ax.scatter(points[:, 1], points[:, 0], color="tab:gray", label="trial")
        front = points[mask][np.argsort(points[mask][:, 1])]
        ax.plot(front[:, 1], front[:, 0], "o-", color="tab:red", label="Pareto front")
        for (q, c), n in zip(points[mask], done.trial.to_numpy()[mask], strict=True):
            ax.annotate(f"#{n}", (c, q), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"{cost} (lower is better)")
    ax.set_ylabel(f"{quality} (higher is better)")
    ax.set_title("Quality vs cost")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances (fANOVA) for the first objective; {} when there is too little to say."""
    complete = study.get_trials(deepcopy=False, states=(State.COMPLETE,))
    if len(complete) < 3 or not any(len({str(t.params.get(p)) for t in complete}) > 1 for p in complete[0].params):
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study, target=lambda t: t.values[0]))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def importance_figure(values: dict[str, float]) -> Figure:
    fig = Figure(figsize=(7, 0.6 + 0.45 * max(len(values), 1)))
    ax = fig.subplots()
    names = list(values)[::-1]
    ax.barh(names, [values[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (fANOVA, first objective)")
    ax.set_title("Parameter importances" if values else "Parameter importances: too few finished trials")
    fig.tight_layout()
    return fig
