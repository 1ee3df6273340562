"""Three worker processes on one study in the real PostgreSQL at 127.0.0.1:5432, MLflow on
PostgreSQL too; one worker is killed with SIGKILL mid-trial and its trial is re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from tests.conftest import ROOT, Store
from tests.sweep.conftest import sweep_spec

State = optuna.trial.TrialState


@pytest.fixture
def mlflow_pg(pg_database):
    """A second fresh database for MLflow's backend store (same server)."""
    import psycopg2

    name = pg_database.rsplit("/", 1)[1] + "_mlflow"
    conn = psycopg2.connect(pg_database.rsplit("/", 1)[0] + "/postgres", connect_timeout=5)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield pg_database.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_three_workers_on_postgres_survive_a_kill_9(tmp_path, pg_database, mlflow_pg):
    store = Store(tmp_path / "mlruns")
    spec = sweep_spec(tmp_path / "s.yaml", store, dev=12, embedded=True)
    args = [sys.executable, "-m", "workbench.cli", "sweep", str(spec), "--trials", "5", "--workers", "3",
            "--storage", pg_database, "--study", "pg", "--set", f"tracking.uri={mlflow_pg}"]
    driver = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.time() + 600
    while time.time() < deadline and victim is None and driver.poll() is None:
        time.sleep(1)
        try:
            study = optuna.load_study(study_name="pg", storage=pg_database)
        except Exception:  # noqa: BLE001  not created yet
            continue
        running = [t for t in study.get_trials(states=(State.RUNNING,)) if "mlflow_run_id" in t.user_attrs
                   and not t.user_attrs.get("worker", "").endswith(f":{driver.pid}")]  # a worker, not the driver
        workers = {t.user_attrs.get("worker") for t in study.get_trials(states=(State.RUNNING,))}
        if running and len(workers) >= 2:  # several workers at once, one of them mid-trial
            victim = running[0]
    assert victim is not None, driver.communicate(timeout=60)
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    out, err = driver.communicate(timeout=900)
    assert driver.returncode == 0, err
    study = optuna.load_study(study_name="pg", storage=pg_database)
    assert study.trials[victim.number].state == State.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retried) == 1 and retried[0].params == victim.params
    assert len(study.get_trials(states=(State.COMPLETE, State.PRUNED))) == 5
    assert len({t.user_attrs["worker"] for t in study.trials}) == 3  # three processes did the work

    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_pg)
    experiment = client.get_experiment_by_name("sweep-test")
    runs = client.search_runs([experiment.experiment_id])
    parent = [r for r in runs if r.data.tags.get("workbench.kind") == "sweep"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert len(children) == 6  # five finished trials and the killed one
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert client.get_run(victim.user_attrs["mlflow_run_id"]).info.status in ("KILLED", "FAILED")
