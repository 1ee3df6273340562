"""Multi-seed runs: the same spec compiled with several optimizer seeds, each a child run
under one parent that logs the mean score and its 95% interval, so optimizer noise shows.

The evaluation examples stay the same for every seed (only `optimizer.seed` changes), so
the children can also be paired with `workbench compare`.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from scipy.stats import t as student_t

from workbench.console import Reporter
from workbench.errors import UserError
from workbench.spec import Spec
from workbench.tracking import tracked_run


@dataclass
class SeedsOutcome:
    seeds: list[int]
    outcomes: list = field(default_factory=list)
    run_id: str | None = None

    @property
    def scores(self) -> list[float]:
        return [o.result.score for o in self.outcomes]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def ci(self) -> tuple[float, float]:
        """Student-t 95% interval of the mean over seeds (a single seed: no interval)."""
        n = len(self.scores)
        if n < 2:
            return (self.mean, self.mean)
        half = student_t.ppf(0.975, n - 1) * statistics.stdev(self.scores) / math.sqrt(n)
        return (self.mean - half, self.mean + half)


def run_seeds(spec: Spec, seeds: int, *, reporter: Reporter | None = None) -> SeedsOutcome:
    from workbench.optimize import optimizer_seed
    from workbench.runner import run

    if seeds < 1:
        raise UserError(f"must be at least 1, got {seeds}", field="--seeds")
    reporter = reporter or Reporter(quiet=True)
    first = optimizer_seed(spec)
    outcome = SeedsOutcome(seeds=[first + i for i in range(seeds)])
    base_name = spec.tracking.run_name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"

    def one(seed: int, parent: str | None):
        child = spec.model_copy(deep=True)
        child.optimizer.seed = seed
        child.tracking.run_name = f"{base_name}-seed{seed}"
        reporter.info(f"seed {seed} ({outcome.seeds.index(seed) + 1} of {seeds})")
        outcome.outcomes.append(run(child, reporter=reporter, parent_run_id=parent))

    if not spec.tracking.enabled:
        for seed in outcome.seeds:
            one(seed, None)
        return outcome
    tags = {"workbench.spec": spec.name, "workbench.task": spec.task,
            "workbench.optimizer": spec.optimizer.name, "workbench.seeds": ",".join(map(str, outcome.seeds))}
    with tracked_run(spec.tracking, kind="multi_seed", experiment=spec.tracking.experiment or spec.name, run_name=base_name,
                     tags=tags) as parent:
        parent.log_params(spec.flat())
        for seed in outcome.seeds:
            one(seed, parent.run_id)
            parent.client.log_metric(parent.run_id, "seed_score", outcome.outcomes[-1].result.score, step=seed)
        low, high = outcome.ci
        parent.log_metrics({"score_mean": outcome.mean, "score_ci_low": low, "score_ci_high": high,
                            "score_std": statistics.stdev(outcome.scores) if seeds > 1 else 0.0,
                            "seeds": float(seeds)})
        from workbench.comparison.plots import seed_scores

        with tempfile.TemporaryDirectory() as folder:
            path = seed_scores(outcome.scores, Path(folder) / "seed_scores.png",
                               f"{spec.name}: {spec.optimizer.name} over {seeds} seeds")
            parent.client.log_artifact(parent.run_id, str(path))
        outcome.run_id = parent.run_id
    return outcome
