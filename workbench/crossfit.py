"""Cross-fitted runs: `workbench run SPEC --folds k` runs the spec once per fold (`dataset.fold: i/k`,
workbench/data/folds.py), each a child run under one parent that pools the k per-example tables.

The parent's `score` is the mean over every test item, each scored by the one program that never
trained on it, with a bootstrap interval over those items; its `predictions.json` is the pooled table
(a `fold` column says which child scored the row), so `workbench compare PARENT OTHER_RUN` pairs it
item by item with a run on the same test split. There is no single compiled program to deploy: the
score says how well the recipe does on items like these; train on all of them (no fold) to deploy.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.console import Reporter
from workbench.errors import UserError
from workbench.spec import Spec
from workbench.tracking import tracked_run


@dataclass
class FoldsOutcome:
    k: int
    outcomes: list = field(default_factory=list)
    table: object = None  # pandas.DataFrame: the children's per-example rows, with a `fold` column
    score: float = float("nan")
    ci: tuple[float, float] = (float("nan"), float("nan"))
    baselines: dict = field(default_factory=dict)  # {name: (pooled score, ci)}
    run_id: str | None = None


def fold_specs(spec: Spec, k: int) -> tuple[str, list[Spec]]:
    """The parent run's name and the spec of each fold, after checking `--folds` against the spec."""
    if k < 2:
        raise UserError(f"cross-fitting needs at least 2 folds, got {k}", field="--folds")
    if spec.dataset.fold is not None:
        raise UserError(f"--folds runs every fold itself; leave dataset.fold ({spec.dataset.fold!r}) unset",
                        file=spec.source, field="dataset.fold")
    base_name = spec.tracking.run_name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    specs = []
    for i in range(1, k + 1):
        child = spec.model_copy(deep=True)
        child.dataset.fold = f"{i}/{k}"
        child.tracking.run_name = f"{base_name}-fold{i}of{k}"
        specs.append(child)
    return base_name, specs


def pool(outcomes: list, k: int):
    """The children's per-example tables as one (a `fold` column added), its mean and bootstrap interval,
    and each classical baseline pooled the same way ({name: (score, ci)}: trained per fold like the program)."""
    import numpy as np
    import pandas as pd

    from workbench.stats import bootstrap_ci

    table = pd.concat([o.result.table.assign(fold=f"{i}/{k}") for i, o in enumerate(outcomes, 1)],
                      ignore_index=True)
    baselines = {}
    for name in [b.name for b in outcomes[0].baselines]:
        parts = [next((b.scores for b in o.baselines if b.name == name), None) for o in outcomes]
        if all(p is not None and len(p) == o.result.n for p, o in zip(parts, outcomes)):
            scores = np.concatenate(parts)
            baselines[name] = (float(scores.mean()), bootstrap_ci(scores))
    return table, float(table["score"].mean()), bootstrap_ci(table["score"]), baselines


def run_folds(spec: Spec, k: int, *, reporter: Reporter | None = None) -> FoldsOutcome:
    """Check every fold's data first (bad input stops before any run), then run them under one parent."""
    from workbench.data.loading import load_data, load_whole
    from workbench.lm.window import check_demos_fit
    from workbench.runner import run

    reporter = reporter or Reporter(quiet=True)
    base_name, specs = fold_specs(spec, k)
    whole = load_whole(spec)  # once; each fold is a view of it
    loaded = [load_data(child, whole) for child in specs]
    for child, data in zip(specs, loaded):
        check_demos_fit(child, data.data)
    outcome = FoldsOutcome(k=k)

    def one(i: int, parent: str | None):
        reporter.info(f"fold {i} of {k}: {loaded[i - 1].data.splits['test'].num_rows} test items, "
                      f"{loaded[i - 1].data.splits['train'].num_rows} training items")
        outcome.outcomes.append(run(specs[i - 1], reporter=reporter, parent_run_id=parent, loaded=loaded[i - 1]))

    if not spec.tracking.enabled:
        for i in range(1, k + 1):
            one(i, None)
        outcome.table, outcome.score, outcome.ci, outcome.baselines = pool(outcome.outcomes, k)
        return outcome
    tags = {"workbench.spec": spec.name, "workbench.task": spec.task, "workbench.optimizer": spec.optimizer.name,
            "workbench.folds": str(k)}
    with tracked_run(spec.tracking, kind="cross_fitted", experiment=spec.tracking.experiment or spec.name,
                     run_name=base_name, tags=tags) as parent:
        parent.log_params(spec.flat())
        for i in range(1, k + 1):
            one(i, parent.run_id)
            parent.client.log_metric(parent.run_id, "fold_score", outcome.outcomes[-1].result.score, step=i)
        outcome.table, outcome.score, outcome.ci, outcome.baselines = pool(outcome.outcomes, k)
        scores = [o.result.score for o in outcome.outcomes]
        parent.log_metrics({"score": outcome.score, "score_ci_low": outcome.ci[0], "score_ci_high": outcome.ci[1],
                            "n_examples": float(len(outcome.table)), "folds": float(k),
                            "fold_score_std": statistics.stdev(scores),
                            **{f"baseline.{name}.score": score for name, (score, _) in outcome.baselines.items()}})
        parent.log_table(outcome.table, "predictions.json")
        from workbench.comparison.plots import seed_scores

        with tempfile.TemporaryDirectory() as folder:
            path = seed_scores(scores, Path(folder) / "fold_scores.png",
                               f"{spec.name}: {spec.optimizer.name}, {k} folds", xlabel="fold")
            parent.client.log_artifact(parent.run_id, str(path))
        outcome.run_id = parent.run_id
    return outcome
