"""Which MLflow store a command uses, one rule for all: the --tracking-uri flag, else the
spec's tracking.uri, else $WORKBENCH_TRACKING_URI / $MLFLOW_TRACKING_URI, else
sqlite:///mlruns/mlflow.db. Real CLI subprocesses on the recorded LM, three real stores."""

from __future__ import annotations

import os

import pytest

from tests.conftest import FAST_LM, NO_GENAI, SPEC, Store, run_cli

SMALL = ["dataset.train=400", "dataset.dev=20", "dataset.test=12"]


def _run(tmp_path, *args: str, env: dict[str, str], sets: tuple[str, ...] = ()) -> str:
    overrides = [*SMALL, *FAST_LM, *NO_GENAI, f"tracking.artifact_root={tmp_path / 'artifacts'}", *sets]
    result = run_cli("run", str(SPEC), "--quiet", *args, *[a for o in overrides for a in ("--set", o)],
                     cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return next(x for x in result.stdout.splitlines() if x.startswith("run_id=")).split()[0].removeprefix("run_id=")


@pytest.fixture
def stores(tmp_path):
    return {name: Store(tmp_path / name) for name in ("env", "spec", "flag")}


def _clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_TRACKING_URI", "MLFLOW_TRACKING_URI")}
    return {**env, **values}


def test_flag_beats_spec_beats_environment_beats_default(tmp_path, stores):
    env = _clean_env(MLFLOW_TRACKING_URI=stores["env"].uri)
    by_env = _run(tmp_path, env=env)  # the shipped spec names no store: the environment's
    by_spec = _run(tmp_path, env=env, sets=(f"tracking.uri={stores['spec'].uri}",))
    by_flag = _run(tmp_path, "--tracking-uri", stores["flag"].uri, env=env, sets=(f"tracking.uri={stores['spec'].uri}",))
    assert [r["run_id"] for r in stores["env"].runs()] == [by_env]
    assert [r["run_id"] for r in stores["spec"].runs()] == [by_spec]
    assert [r["run_id"] for r in stores["flag"].runs()] == [by_flag]
    by_default = _run(tmp_path, env=_clean_env())
    assert by_default in [r["run_id"] for r in Store(tmp_path / "mlruns").runs()]  # sqlite:///mlruns/mlflow.db
    assert not (tmp_path / "mlruns" / "mlflow.db").samefile(stores["env"].db)


def test_reading_commands_take_the_environment_and_the_flag(tmp_path, stores):
    run_id = _run(tmp_path, env=_clean_env(), sets=(f"tracking.uri={stores['env'].uri}",))
    env = _clean_env(MLFLOW_TRACKING_URI=stores["env"].uri)
    listed = run_cli("runs", cwd=tmp_path, env=env)
    assert listed.returncode == 0 and run_id[:8] in listed.stdout, listed.stderr[-2000:]
    exported = run_cli("export", run_id, "--out", str(tmp_path / "bundle"), cwd=tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (tmp_path / "bundle" / "manifest.json").is_file()
    # the flag beats the environment: the other store does not hold the run
    elsewhere = run_cli("export", run_id, "--out", str(tmp_path / "b2"), "--tracking-uri", stores["flag"].uri,
                        cwd=tmp_path, env=env)
    assert elsewhere.returncode == 2 and "Traceback" not in elsewhere.stderr and not (tmp_path / "b2").exists()
