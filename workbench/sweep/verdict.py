"""Is the sweep's best trial really better than the spec as written?

Trial 0 of a new study is the spec's own values (enqueued as the incumbent when they lie in
the search space). With one objective, the best trial is recommended only when it beats the
incumbent by the paired test of `workbench compare` on the same dev items (difference > 0,
p < 0.05); otherwise the recommendation is the incumbent, and the parent run says so. On 40
dev items a gain of 0.05 is noise; this is where a tool should say it.
"""

from __future__ import annotations

import math

import optuna

INCUMBENT = "incumbent"
ALPHA = 0.05


def resolution(n: int) -> float:
    """Half-width of a 95% CI of a mean 0/1 score near 0.5 on n items: differences under it are noise."""
    return 0.98 / math.sqrt(n) if n else float("inf")


def items_for(difference: float) -> int:
    """Items needed before a difference of this size stands out of the noise (the inverse of `resolution`)."""
    return math.ceil((0.98 / difference) ** 2)


def sizing(n: int, split: str = "dev", difference: float = 0.05) -> str:
    """What n items can resolve, and how many the usual 0.05 needs when n is short of it."""
    said = f"{split} split: {n} items, so score differences under ±{resolution(n):.2f} are noise (95%)"
    if resolution(n) > difference:
        said += f"; to see a difference of {difference:.2f}, use about {items_for(difference)} (dataset.{split})"
    return said


def incumbent_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get(INCUMBENT)]
    return done[0] if done else None


def judge(study: optuna.Study, best: optuna.trial.FrozenTrial, client) -> tuple[optuna.trial.FrozenTrial, str, dict]:
    """(the trial to recommend, the verdict line, metrics for the parent run)."""
    from workbench.comparison.report import aligned_scores
    from workbench.comparison.runs import load_run
    from workbench.comparison.stats import paired_test
    from workbench.errors import UserError

    incumbent = incumbent_trial(study)
    if incumbent is None:
        why = study.user_attrs.get("no_incumbent", "the spec's own values are outside the search space")
        return best, f"no trial 0 with the spec as written ({why}): best by mean score, not tested", {}
    if incumbent.number == best.number:
        return best, "no trial scored above the spec as written (trial 0 is the best)", {}
    try:
        runs = [load_run(client, client.get_run(t.user_attrs["mlflow_run_id"])) for t in (incumbent, best)]
        a, b = aligned_scores(*runs)
    except (KeyError, UserError) as exc:
        return best, f"best by mean score; not tested against the spec as written ({exc})", {}
    test = paired_test(a.to_numpy(), b.to_numpy())
    metrics = {"best_vs_incumbent_difference": test.difference, "best_vs_incumbent_p_value": test.p_value,
               "best_vs_incumbent_ci_low": test.ci[0], "best_vs_incumbent_ci_high": test.ci[1]}
    said = (f"trial {best.number} vs the spec as written (trial {incumbent.number}): {test.difference:+.4f} on "
            f"{len(a)} dev items, 95% CI [{test.ci[0]:+.4f}, {test.ci[1]:+.4f}], {test.test} p = {test.p_value:.3g}")
    if test.difference > 0 and test.p_value < ALPHA:
        return best, f"trial {best.number} is significantly better: {said}", metrics
    return incumbent, f"no trial significantly better than the spec as written: {said}", metrics
