"""Real sweeps (SQLite storage): parent and child runs, plots, budget stop and resume on the
recorded LM; a kill -9 of the driver mid-trial on the embedded LM (slow tier)."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from tests.conftest import ROOT, Store, run_cli, run_main
from tests.sweep.conftest import SEARCH, sweep_spec

State = optuna.trial.TrialState


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def _children(store: Store, parent: str):
    return store.client().search_runs([store.client().get_experiment_by_name("sweep-test").experiment_id],
                                      filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def test_sweep_logs_parent_children_plots_and_resumes(tmp_path):
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store)
    url = f"sqlite:///{tmp_path}/optuna.db"
    result = run_main("sweep", str(spec), "--trials", "3", "--storage", url, "--study", "s1")
    assert result.returncode == 0, result.stderr
    assert "estimate for 3 trials: at least 24 LM calls" in result.stdout
    parent_id = next(x for x in result.stdout.split() if x.startswith("parent_run_id=")).split("=")[1]
    client = store.client()
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["workbench.kind"] == "sweep"
    children = _children(store, parent_id)
    assert len(children) == 3 and {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["workbench.kind"] for c in children} == {"trial"}  # told apart from runs
    study = _study(url, "s1")
    trials = study.get_trials(states=(State.COMPLETE, State.PRUNED))
    assert len(trials) == 3
    by_run = {t.user_attrs["mlflow_run_id"]: t for t in trials}
    for child in children:  # each child run holds its trial's sampled values and its score
        trial = by_run[child.info.run_id]
        assert child.data.params["optimizer.params.k"] == str(trial.params["optimizer.params.k"])
        if trial.state == State.COMPLETE:
            assert abs(child.data.metrics["score"] - trial.value) < 1e-9
            assert child.data.metrics["lm_calls"] >= 8 or trial.user_attrs["lm_calls"] == 0  # cached answers
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"history.png", "pareto_front.png", "importances.png", "trials.csv", "best_spec.yaml"} <= artifacts
    # Trial 0 is the spec as written; on 8 dev items nothing can beat it by a paired test, so the
    # recommendation stays the spec as written and the parent says why.
    incumbent = study.trials[0]
    assert incumbent.user_attrs["incumbent"] and incumbent.params == {"optimizer.params.k": 5,
                                                                      "program.params.candidates": 2}
    verdict = parent.data.tags["workbench.verdict"]
    assert "split: 8 items, so score differences under ±0.35 are noise" in result.stdout
    assert "to see a difference of 0.05, use about 385 (dataset.dev)" in result.stdout
    best = yaml.safe_load(client.download_artifacts(parent_id, "best_spec.yaml", str(tmp_path)) and
                          (tmp_path / "best_spec.yaml").read_text())
    assert "search" not in best
    if study.best_trial.number == 0:
        assert verdict.startswith("no trial scored above the spec as written")
    else:
        assert verdict.startswith("no trial significantly better than the spec as written") and verdict in result.stdout
        assert "best_vs_incumbent_p_value" in parent.data.metrics
    assert parent.data.metrics["best_score"] == incumbent.value
    assert best["optimizer"]["params"]["k"] == 5 and best["program"]["params"]["candidates"] == 2

    again = run_main("sweep", str(spec), "--trials", "4", "--storage", url, "--study", "s1")
    assert again.returncode == 0, again.stderr
    assert "resuming with 3 finished trials" in again.stdout
    assert len(_study(url, "s1").get_trials(states=(State.COMPLETE, State.PRUNED))) == 4
    assert client.get_run(parent_id).info.status == "FINISHED"  # the same parent, resumed and ended again
    assert len(_children(store, parent_id)) == 4

    # Two workers that both saw one trial left each start one: the later-numbered one is surplus,
    # ends at once without an MLflow run and counts as neither finished nor failed.
    from workbench.sweep.driver import _counts
    from workbench.sweep.report import trials_frame
    from workbench.sweep.trial import Surplus, TrialObjective

    study = _study(url, "s1")
    study.optimize(TrialObjective(study, worker="late"), n_trials=1, catch=(Surplus,))
    late = study.trials[-1]
    assert late.state == State.FAIL and late.user_attrs["surplus"] and "mlflow_run_id" not in late.user_attrs
    assert _counts(study)[State.FAIL] == 0 and len(trials_frame(study)) == 4
    assert len(_children(store, parent_id)) == 4


def test_budget_stops_cleanly_and_multi_objective_front(tmp_path):
    store = Store(tmp_path / "mlruns")
    search = copy.deepcopy(SEARCH)
    search["objectives"] = [{"metric": "score", "direction": "maximize"},
                            {"metric": "lm_calls", "direction": "minimize"}]
    spec = sweep_spec(tmp_path / "s.yaml", store, search)
    url = f"sqlite:///{tmp_path}/optuna.db"
    result = run_cli("sweep", str(spec), "--trials", "10", "--storage", url, "--study", "b", "--max-lm-calls", "12",
                     env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert "stopped: LM-call budget reached" in result.stdout
    study = _study(url, "b")
    assert len(study.get_trials(states=(State.COMPLETE,))) == 1
    assert study.get_trials()[-1].state == State.PRUNED  # the trial running when the budget ran out
    spent = sum(t.user_attrs.get("lm_calls", 0) for t in study.get_trials())
    assert 12 <= spent <= 13  # stops at the study's budget (+ one call in flight)
    parent_id = next(x for x in result.stdout.split() if x.startswith("parent_run_id=")).split("=")[1]
    parent = store.client().get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["spent_lm_calls"] == spent
    assert parent.data.tags["workbench.stop_reason"].startswith("LM-call budget reached")
    assert not [r for r in store.runs() if r["status"] == "RUNNING"]


def test_a_trial_compiles_under_the_run_meter_with_what_the_study_has_left(tmp_path):
    """The spec as written bootstraps demos (compile calls) and evaluates 8 dev items; with a study
    budget of 10 calls the trial's own meter keeps 8 for the evaluation and stops compile at 2,
    inside the trial: the study spends no more than its budget."""
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store, {**SEARCH, "space": {
        "optimizer.params.max_bootstrapped_demos": {"type": "int", "low": 1, "high": 4}}})
    data = yaml.safe_load(spec.read_text())
    data["optimizer"] = {"name": "BootstrapFewShot", "params": {"max_bootstrapped_demos": 4, "max_labeled_demos": 1}}
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    url = f"sqlite:///{tmp_path}/optuna.db"
    result = run_cli("sweep", str(spec), "--trials", "3", "--storage", url, "--study", "m", "--max-lm-calls", "10",
                     env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    study = _study(url, "m")
    first = study.trials[0]
    assert first.state == State.COMPLETE and first.user_attrs["lm_calls"] <= 10
    run = store.client().get_run(first.user_attrs["mlflow_run_id"])
    assert run.data.tags["workbench.budget_exhausted"].startswith("compile: LM-call compile share")
    assert run.data.metrics["n_examples"] == 8 and run.data.metrics["spend_lm_calls"] <= 10
    assert sum(t.user_attrs.get("lm_calls", 0) for t in study.get_trials()) <= 11


@pytest.mark.slow
def test_kill_9_of_the_driver_then_same_command_resumes(tmp_path):
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store, dev=16, embedded=True)
    url = f"sqlite:///{tmp_path}/optuna.db"
    args = [sys.executable, "-m", "workbench.cli", "sweep", str(spec), "--trials", "2", "--storage", url,
            "--study", "k"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # wait for a trial that has started its MLflow run
        time.sleep(1)
        try:
            running = _study(url, "k").get_trials(states=(State.RUNNING,))
        except Exception:  # noqa: BLE001  the study is not created yet
            continue
        if running and "mlflow_run_id" in running[0].user_attrs:
            break
    assert proc.poll() is None, proc.communicate()
    killed = running[0]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    result = run_cli("sweep", str(spec), "--trials", "2", "--storage", url, "--study", "k")
    assert result.returncode == 0, result.stderr
    study = _study(url, "k")
    assert study.trials[killed.number].state == State.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].params == killed.params and retried[0].state != State.FAIL
    assert len(study.get_trials(states=(State.COMPLETE, State.PRUNED))) == 2
    client = store.client()
    assert client.get_run(killed.user_attrs["mlflow_run_id"]).info.status in ("FAILED", "KILLED")
    assert not [r for r in store.runs() if r["status"] == "RUNNING"]


def test_a_clearly_better_trial_is_recommended_over_the_spec_as_written(tmp_path):
    """The spec as written is zero-shot (no optimizer: labels by chance on the recorded LM); a trial
    with retrieved demos scores like nearest neighbours, far beyond noise on 40 dev items."""
    store = Store(tmp_path / "mlruns")
    search = {**SEARCH, "space": {"optimizer.name": {"type": "categorical", "choices": ["none", "retrieval_demos"]}}}
    spec = sweep_spec(tmp_path / "s.yaml", store, search=search, dev=40)
    data = yaml.safe_load(spec.read_text())
    data["optimizer"] = {"name": "none", "params": {}}
    data["program"]["params"]["candidates"] = 0
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    url = f"sqlite:///{tmp_path}/optuna.db"
    result = run_main("sweep", str(spec), "--trials", "4", "--storage", url, "--study", "s2")
    assert result.returncode == 0, result.stderr
    study = _study(url, "s2")
    assert study.trials[0].params == {"optimizer.name": "none"} and study.trials[0].user_attrs["incumbent"]
    parent_id = next(x for x in result.stdout.split() if x.startswith("parent_run_id=")).split("=")[1]
    parent = store.client().get_run(parent_id)
    verdict = parent.data.tags["workbench.verdict"]
    assert verdict.startswith(f"trial {study.best_trial.number} is significantly better"), verdict
    assert parent.data.metrics["best_vs_incumbent_ci_low"] > 0 and parent.data.metrics["best_score"] == study.best_value
