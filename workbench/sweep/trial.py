"""One sweep trial: sample the space, run the spec as an MLflow child run, report to Optuna.

The evaluation is reported to the pruner in `search.steps` increments; a trial the pruner
gives up on, or one running when a budget runs out, ends as PRUNED in Optuna and FINISHED
(tagged `workbench.trial_state=PRUNED`) in MLflow, with the score it had so far.
"""

from __future__ import annotations

import math
import time
from typing import Any

import optuna

from workbench.errors import RunFailed, UserError
from workbench.runner import RunHooks, run
from workbench.spec import validate
from workbench.sweep.budget import Budget, Spent, study_spent
from workbench.search import SearchSpec, apply

TRIAL_KIND = "trial"
STUDY_TAG = "workbench.study"


class Pruned(optuna.TrialPruned):
    """Ends the trial's MLflow run as FINISHED (it stopped early on purpose), not FAILED."""

    run_status = "FINISHED"


class Surplus(Exception):
    """Raised for a trial started beyond the study's count: two workers that both saw one trial
    left each start one. The study's trials are numbered by its storage, so the rule is free of
    races: the lowest-numbered `trials` trials that did not fail run, a later one ends at once
    as FAIL (tagged `surplus`, no MLflow run) and counts as neither finished nor failed."""


class TrialObjective:
    """`study.optimize(TrialObjective(...))`: one trial per call."""

    def __init__(self, study: optuna.Study, *, worker: str, reporter=None):
        attrs = study.user_attrs
        self.study = study
        self.search = SearchSpec.model_validate(attrs["search"])
        self.base = attrs["spec"]
        self.source = attrs.get("source", "<spec>")
        self.parent_run_id = attrs.get("mlflow_parent_run_id")
        self.budget = Budget.from_attrs(attrs)
        self.worker = worker
        self.reporter = reporter

    def spec_for(self, values: dict[str, Any]):
        data = apply(self.base, values)
        data["eval"] = {**data.get("eval", {}), "split": self.search.split}
        data["tracking"] = {**data.get("tracking", {}), "run_name": None}
        data.pop("search", None)
        return validate(data, self.source)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        trials = int(self.study.user_attrs.get("trials", 0))
        State = optuna.trial.TrialState
        ahead = [t for t in self.study.get_trials(deepcopy=False) if t.number < trial.number
                 and t.state in (State.COMPLETE, State.PRUNED, State.RUNNING, State.WAITING)]
        if trials and len(ahead) >= trials:
            trial.set_user_attr("worker", self.worker)
            trial.set_user_attr("surplus", True)
            raise Surplus(f"trial {trial.number} is beyond the study's {trials} trials")
        values = {path: dist.suggest(trial, path) for path, dist in self.search.space.items()}
        trial.set_user_attr("worker", self.worker)
        try:
            spec = self.spec_for(values)
        except UserError as exc:
            trial.set_user_attr("error", str(exc))
            raise
        spec.tracking.run_name = f"{self.study.study_name}-trial-{trial.number}"
        self._meter_within_study(spec, trial)
        state: dict[str, Any] = {"lm": None, "spent": Spent(), "score": math.nan, "done": 0}

        def record_spend() -> Spent:
            lm = state["lm"]
            if lm is None:
                return state["spent"]
            meter = lm.engine.budget
            if meter is not None:  # the run's own meter: the same accounting as a `workbench run`
                spent = Spent(meter.spent.lm_calls, meter.spent.tokens, meter.spent.cost_usd)
            else:
                u = lm.engine.usage.snapshot()
                spent = Spent(u.calls, u.input_tokens + u.output_tokens,
                              self.search.cost(spec.lm.model, u.input_tokens, u.output_tokens))
            state["spent"] = spent
            for key, value in spent.as_dict().items():
                trial.set_user_attr(key, value)
            return spent

        def on_progress(done: int, total: int, score: float, calls: int) -> None:
            state["score"], state["done"] = score, done
            steps = self._steps(total)
            if done not in steps:
                return
            spent = record_spend()
            reason = self.budget.exceeded(study_spent(self.study, skip=trial.number) + spent)
            if reason:
                self.study.set_user_attr("stopped", reason)
                if done >= total:  # the budget was reached by this trial's last item: it finished, no more start
                    return
                trial.set_user_attr("pruned_by", reason)
                raise Pruned(reason)
            if len(self.search.objectives) == 1 and done < steps[-1]:
                trial.report(score, step=done)
                if trial.should_prune():
                    trial.set_user_attr("pruned_by", f"pruner at {done} items (score {score:.3f})")
                    raise Pruned(f"pruned at {done} items")

        hooks = RunHooks(kind=TRIAL_KIND, tags={STUDY_TAG: self.study.study_name,
                               "workbench.trial": str(trial.number), "workbench.worker": self.worker},
                         on_lm=lambda lm: state.__setitem__("lm", lm),
                         on_run=lambda tracked: trial.set_user_attr("mlflow_run_id", tracked.run_id),
                         on_progress=on_progress)
        start = time.perf_counter()
        try:
            outcome = run(spec, reporter=self.reporter, parent_run_id=self.parent_run_id, hooks=hooks)
        except Pruned:
            self._close_pruned(trial, state)
            raise
        except (RunFailed, UserError) as exc:
            trial.set_user_attr("error", str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
            raise
        finally:
            record_spend()
            trial.set_user_attr("seconds", time.perf_counter() - start)
        if outcome.stopped:  # the study's budget ran out inside this trial: its score is partial
            self.study.set_user_attr("stopped", outcome.stopped)
            trial.set_user_attr("pruned_by", outcome.stopped)
            state["score"], state["done"] = outcome.result.score, outcome.result.n
            self._close_pruned(trial, state)
            raise optuna.TrialPruned(outcome.stopped)
        result = outcome.result
        metrics = {"score": result.score, "lm_calls": state["spent"].lm_calls, "tokens": state["spent"].tokens,
                   "cost_usd": state["spent"].cost_usd, "seconds_per_example": result.seconds / max(result.n, 1)}
        trial.set_user_attr("score_ci", list(result.ci))
        trial.set_user_attr("n", result.n)
        values_out = tuple(metrics[o.metric] for o in self.search.objectives)
        return values_out[0] if len(values_out) == 1 else values_out

    def _meter_within_study(self, spec, trial: optuna.Trial) -> None:
        """Give the trial's run what the study has left as its own budget, so compile and
        evaluation stop mid-trial (not only between reports) when the study's budget runs out;
        the search's prices become the run's, so both count dollars alike."""
        b = self.budget
        if not any((b.max_lm_calls, b.max_tokens, b.max_cost_usd, b.deadline)):
            return
        left = study_spent(self.study, skip=trial.number)
        price = self.search.prices.get(spec.lm.model)
        if price is not None and spec.lm.price_input_per_mtok is None and spec.lm.price_output_per_mtok is None:
            spec.lm.price_input_per_mtok, spec.lm.price_output_per_mtok = price.input, price.output
        budget = spec.budget
        if b.max_lm_calls:
            budget.max_lm_calls = max(int(b.max_lm_calls - left.lm_calls), 1)
        if b.max_tokens:
            budget.max_tokens = max(int(b.max_tokens - left.tokens), 1)
        if b.max_cost_usd and (price is not None or spec.lm.backend in ("embedded", "recorded")):
            budget.max_cost_usd = max(b.max_cost_usd - left.cost_usd, 1e-9)
        if b.deadline:
            budget.timeout_s = max(b.deadline - time.time(), 0.001)
        budget.allow_over_estimate = True  # the study's budget decides; a trial may end partial

    def _steps(self, n: int) -> list[int]:
        """Item counts after which the trial reports: `steps` even increments of the eval set."""
        k = min(self.search.steps, max(n, 1))
        return sorted({max(1, round(n * (i + 1) / k)) for i in range(k)})

    def _close_pruned(self, trial: optuna.Trial, state: dict[str, Any]) -> None:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id:
            return
        from workbench.tracking import client as mlflow_client

        client = mlflow_client(self.study.user_attrs["spec"]["tracking"]["uri"])
        client.set_tag(run_id, "workbench.trial_state", "PRUNED")
        client.set_tag(run_id, "workbench.pruned_by", str(trial.user_attrs.get("pruned_by", ""))[:250])
        if not math.isnan(state["score"]):
            client.log_metric(run_id, "partial_score", state["score"])
            client.log_metric(run_id, "partial_n", float(state["done"]))
