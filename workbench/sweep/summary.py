"""The sweep parent run's record: best trial(s), spend, stop reason, table and plots, and the
best trial's full spec as YAML (ready for `workbench run`)."""

from __future__ import annotations

import optuna
import yaml

from workbench.sweep.budget import study_spent
from workbench.sweep.report import (best_trials, history_figure, importance_figure, importances, pareto_figure,
                                    trials_frame)
from workbench.search import SearchSpec, apply

State = optuna.trial.TrialState


def best_spec(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict:
    """The spec a trial ran, with its sampled values applied and no search section."""
    search = SearchSpec.model_validate(study.user_attrs["search"])
    values = {path: dist.decode(trial.params.get(path)) for path, dist in search.space.items()}
    data = apply(study.user_attrs["spec"], values)
    data.pop("search", None)
    return data


def log_summary(study: optuna.Study, parent, reason: str) -> tuple[list[optuna.trial.FrozenTrial], str]:
    """Log the sweep's outcome to its parent run; returns the recommended trial(s) and, with one
    objective, the verdict against the spec as written (workbench/sweep/verdict.py)."""
    search = SearchSpec.model_validate(study.user_attrs["search"])
    frame = trials_frame(study)
    spent = study_spent(study)
    counts = {s.name.lower(): int((frame.state == s.name).sum()) if len(frame) else 0 for s in State}
    parent.log_metrics({"spent_lm_calls": spent.lm_calls, "spent_tokens": spent.tokens,
                        "spent_cost_usd": spent.cost_usd, **{f"trials_{k}": v for k, v in counts.items()}})
    parent.set_tags({"workbench.stop_reason": reason})
    best, verdict = best_trials(study), ""
    if len(best) == 1:
        from workbench.sweep.verdict import judge

        chosen, verdict, tested = judge(study, best[0], parent.client)
        parent.log_metrics(tested)
        parent.set_tags({"workbench.verdict": verdict[:5000]})
        best = [chosen]
    if best:
        top = best[0]
        names = [o.metric for o in search.objectives]
        parent.log_metrics({f"best_{n}": v for n, v in zip(names, top.values, strict=True)})
        parent.log_params({f"best.{k}": v for k, v in top.params.items()})
        parent.set_tags({"workbench.best_trial": top.number,
                         "workbench.best_run_id": top.user_attrs.get("mlflow_run_id", "")})
        parent.log_text(yaml.safe_dump(best_spec(study, top), sort_keys=False), "best_spec.yaml")
        if len(best) > 1:
            parent.log_dict([{"trial": t.number, "values": t.values, "params": t.params,
                              "mlflow_run_id": t.user_attrs.get("mlflow_run_id")} for t in best], "pareto_front.json")
    if len(frame):
        parent.log_csv(frame, "trials.csv")
        first = search.objectives[0]
        parent.log_figure(history_figure(frame, first.metric, first.direction == "maximize"), "history.png")
        if "score" in frame and "lm_calls" in frame:
            parent.log_figure(pareto_figure(frame), "pareto_front.png")
        values = importances(study)
        parent.log_dict(values, "importances.json")
        parent.log_figure(importance_figure(values), "importances.png")
    return best, verdict
