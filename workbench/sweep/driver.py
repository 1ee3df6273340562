"""`workbench sweep` (the driver) and `workbench sweep-worker` (a worker joining a study).

The driver validates the spec's search space, creates or resumes the Optuna study and the
MLflow parent run, prints a pre-run estimate, then works the study itself, with K-1
`sweep-worker` processes beside it for `--workers K`, and watches them finish. When the trials are done, a budget
is spent or the time is up, it logs the best trial, the trials table, the Pareto front,
importances and the history to the parent run and ends it. Workers on other machines join
with `workbench sweep-worker --study NAME --storage URL`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import optuna

from workbench.errors import RunFailed, UserError
from workbench.spec import Spec, TrackingSpec
from workbench.sweep.budget import Budget, estimate, study_spent
from workbench.search import effective_values, incumbent_params
from workbench.sweep.verdict import INCUMBENT, sizing
from workbench.sweep.study import create_or_resume, is_surplus, load_existing, open_storage, retry_callback
from workbench.sweep.trial import STUDY_TAG, Surplus, TrialObjective
from workbench.tracking import (HOST_TAG, PID_TAG, TrackedRun, configure, create_run, get_or_create_experiment,
                                reap_dead_runs)

State = optuna.trial.TrialState
SWEEP_KIND = "sweep"
MAX_FAILURES_IN_A_ROW = 3


@dataclass
class SweepResult:
    study: optuna.Study
    parent_run_id: str
    stop_reason: str
    best: list[optuna.trial.FrozenTrial]
    verdict: str = ""


def _counts(study: optuna.Study) -> dict[State, int]:
    counts = dict.fromkeys(State, 0)
    for t in study.get_trials(deepcopy=False):
        if not is_surplus(t):
            counts[t.state] += 1
    return counts


def close_dead_trial_run(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial whose worker died: end its MLflow run KILLED (it may be on another machine)."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    if not run_id:
        return
    from workbench.tracking import client as mlflow_client

    client = mlflow_client(study.user_attrs["spec"]["tracking"]["uri"])
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_tag(run_id, "workbench.reaped", "its sweep worker stopped sending heartbeats")
            client.set_terminated(run_id, "KILLED")
    except Exception:  # noqa: BLE001  the store may be the dead machine's; Optuna's record is what counts
        pass


def work(study: optuna.Study, trials: int, *, worker: str, reporter=None, say=print) -> str:
    """Run trials until the study has `trials` finished (complete or pruned), a budget or
    the deadline stops it. Returns why it stopped."""
    objective = TrialObjective(study, worker=worker, reporter=reporter)
    configure(TrackingSpec.model_validate(study.user_attrs["spec"]["tracking"]))
    failures = 0
    while True:
        attrs = study.user_attrs
        if attrs.get("stopped"):
            return attrs["stopped"]
        reason = Budget.from_attrs(attrs).exceeded(study_spent(study))
        if reason:
            study.set_user_attr("stopped", reason)
            return reason
        optuna.storages.fail_stale_trials(study)
        counts = _counts(study)
        done = counts[State.COMPLETE] + counts[State.PRUNED]
        if done >= trials:
            return f"{done} trials finished"
        if done + counts[State.RUNNING] >= trials and counts[State.WAITING] == 0:
            time.sleep(2)  # the last trials are running elsewhere; stay to re-run them if their worker dies
            continue
        study.optimize(objective, n_trials=1, catch=(RunFailed, UserError, Surplus))
        last = max((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == worker),
                   key=lambda t: t.number)
        if is_surplus(last):  # another worker took the last trial at the same moment
            continue
        say(_trial_line(last, done + 1, trials))
        failures = failures + 1 if last.state == State.FAIL else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            return f"{failures} trials in a row failed (last: {last.user_attrs.get('error', 'see its MLflow run')})"


def _trial_line(t: optuna.trial.FrozenTrial, n: int, total: int) -> str:
    values = "/".join(f"{v:.3f}" for v in t.values) if t.values else t.state.name.lower()
    why = t.user_attrs.get("pruned_by") or t.user_attrs.get("error") or ""
    params = ", ".join(f"{k}={v}" for k, v in t.params.items())
    return f"  trial {t.number} [{n}/{total}] {values} ({params}){' - ' + why if why else ''}"


def _parent_run(spec: Spec, study: optuna.Study, existed: bool) -> tuple[TrackedRun, str]:
    client = configure(spec.tracking)
    experiment_id = get_or_create_experiment(client, spec.tracking.experiment or spec.name,
                                             spec.tracking.artifact_root)
    reap_dead_runs(client, experiment_id)
    here = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    old = study.user_attrs.get("mlflow_parent_run_id") if existed else None
    if old:
        try:
            client.update_run(old, status="RUNNING")
            TrackedRun(client, old).set_tags({**here, "workbench.resumed": time.strftime("%Y-%m-%d %H:%M:%S")})
            return TrackedRun(client, old), experiment_id
        except Exception:  # noqa: BLE001  the run was deleted: start a new parent
            pass
    run = create_run(client, experiment_id, kind=SWEEP_KIND, run_name=f"sweep-{study.study_name}",
                     tags={STUDY_TAG: study.study_name, "workbench.spec": spec.name, "workbench.task": spec.task})
    study.set_user_attr("mlflow_parent_run_id", run.info.run_id)
    return TrackedRun(client, run.info.run_id), experiment_id


def _spawn_workers(study_name: str, storage: str, k: int) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return [subprocess.Popen([sys.executable, "-m", "workbench.cli", "sweep-worker", "--study", study_name,
                              "--storage", storage, "--worker-index", str(i + 1)], env=env)
            for i in range(k)]


def _watch(procs: list[subprocess.Popen], study: optuna.Study, trials: int, say) -> None:
    seen = -1
    while any(p.poll() is None for p in procs):
        counts = _counts(study)
        done = counts[State.COMPLETE] + counts[State.PRUNED]
        if done != seen:
            say(f"  {done}/{trials} trials finished, {counts[State.RUNNING]} running, {counts[State.FAIL]} failed")
            seen = done
        time.sleep(2)


def sweep(spec: Spec, *, trials: int, workers: int = 1, storage_url: str, study_name: str | None = None,
          budget: Budget, timeout_s: float | None = None, resume: bool = False, reporter=None,
          say=print) -> SweepResult:
    if spec.search is None:
        raise UserError("this spec has no `search:` section (the values to search)", file=spec.source, field="search")
    if trials < 1:
        raise UserError(f"must be at least 1 (got {trials})", field="--trials")
    if workers < 1:
        raise UserError(f"must be at least 1 (got {workers})", field="--workers")
    if timeout_s is not None and timeout_s <= 0:
        raise UserError(f"must be greater than 0 (got {timeout_s})", field="--timeout")
    name = study_name or f"{spec.name}-sweep"
    storage = open_storage(storage_url, stale_trial_callback=retry_callback(close_dead_trial_run))
    budget.deadline = time.time() + timeout_s if timeout_s else None
    attrs = {"spec": spec.model_dump(mode="json", exclude={"source"}), "search": spec.search.model_dump(mode="json"),
             "source": spec.source, "stopped": "", "trials": trials, **budget.as_attrs()}
    study, existed = create_or_resume(storage, name, spec.search, attrs=attrs, resume=resume)
    if not existed:  # trial 0: the spec as written, the incumbent every recommendation must beat
        params, why = incumbent_params(spec.search, effective_values(spec))
        if params is not None:
            study.enqueue_trial(params, user_attrs={INCUMBENT: True})
        else:
            study.set_user_attr("no_incumbent", why)
            say(f"  no trial 0 with the spec as written ({why}): the best trial will be chosen by mean score alone")
    parent, _ = _parent_run(spec, study, existed)
    counts = _counts(study)
    finished = counts[State.COMPLETE] + counts[State.PRUNED]
    say(f"study {name!r} on {storage_url.split('@')[-1]}: {'resuming with ' + str(finished) + ' finished trials' if existed else 'new'}; "
        f"MLflow parent run {parent.run_id[:8]}; {workers} worker(s)")
    eval_items = (spec.dataset.dev if spec.search.split == "dev" else spec.dataset.test) or 0
    say("  " + estimate(study, max(trials - finished, 0), eval_items) + f"; budget: {budget.describe()}")
    if eval_items:
        say(f"  {sizing(eval_items, spec.search.split)}; the best trial must beat the spec as written (trial 0) "
            "by a paired test")
    status, reason = "FAILED", "failed"
    try:
        settings = {"sweep.trials": trials, "sweep.workers": workers, "sweep.storage": storage_url.split("@")[-1],
                    "sweep.space": ", ".join(spec.search.space), "sweep.budget": budget.describe()}
        if not existed:  # MLflow params are write-once; a resumed sweep's settings go to tags
            parent.log_params({k: v for k, v in settings.items() if k != "sweep.budget"})
        parent.set_tags({f"workbench.{k}": v for k, v in settings.items()})
        here = f"{socket.gethostname()}:{os.getpid()}"
        if workers == 1:
            reason = work(study, trials, worker=here, reporter=reporter, say=say)
        else:
            # K-1 worker processes, and this process works too: it has everything imported already,
            # so its first trial starts while the others are still starting (on 2 cores, 4.5 s of
            # imports each), and one process fewer competes for the CPU.
            procs = _spawn_workers(name, storage_url, workers - 1)
            try:
                work(study, trials, worker=here, reporter=reporter, say=say)
                _watch(procs, study, trials, say)
            finally:
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
                for p in procs:
                    p.wait(60)
            counts = _counts(study)
            reason = study.user_attrs.get("stopped") or f"{counts[State.COMPLETE] + counts[State.PRUNED]} trials finished"
        status = "FINISHED"
    except KeyboardInterrupt:
        status, reason = "KILLED", "interrupted"
        raise
    finally:
        from workbench.sweep.summary import log_summary

        try:
            best, verdict = log_summary(study, parent, reason)
        finally:
            parent.client.set_terminated(parent.run_id, status)
    return SweepResult(study, parent.run_id, reason, best, verdict)


def worker(study_name: str, storage_url: str, *, index: int = 0, reporter=None, say=print) -> str:
    """`workbench sweep-worker`: join an existing study and work it until it is done."""
    storage = open_storage(storage_url, stale_trial_callback=retry_callback(close_dead_trial_run))
    study = load_existing(storage, study_name, worker=index)
    trials = int(study.user_attrs.get("trials", 0))
    if not trials:
        raise UserError(f"study {study_name!r} was not created by `workbench sweep`", field="--study")
    name = f"{socket.gethostname()}:{os.getpid()}"
    say(f"worker {name} joined study {study_name!r} ({trials} trials)")
    return work(study, trials, worker=name, reporter=reporter, say=say)
