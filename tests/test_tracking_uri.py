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


def test_flag_beats_spec_beats_environment_beats_default(tmp_path, stores, monkeypatch):
    """In-process runs (the CLI's own code; the subprocess path is the next test's)."""
    from tests.conftest import run_main

    def run(*args: str, sets: tuple[str, ...] = ()) -> str:
        overrides = [*SMALL, *FAST_LM, *NO_GENAI, f"tracking.artifact_root={tmp_path / 'artifacts'}", *sets]
        result = run_main("run", str(SPEC), "--quiet", *args, *[a for o in overrides for a in ("--set", o)])
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.split("run_id=")[1].split()[0]

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stores["env"].uri)
    by_env = run()  # the shipped spec names no store: the environment's
    by_spec = run(sets=(f"tracking.uri={stores['spec'].uri}",))
    by_flag = run("--tracking-uri", stores["flag"].uri, sets=(f"tracking.uri={stores['spec'].uri}",))
    assert [r["run_id"] for r in stores["env"].runs()] == [by_env]
    assert [r["run_id"] for r in stores["spec"].runs()] == [by_spec]
    assert [r["run_id"] for r in stores["flag"].runs()] == [by_flag]
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    by_default = run()
    where = {str(p.relative_to(tmp_path)): [r["run_id"] for r in Store(p.parent).runs()] for p in tmp_path.rglob("*.db")}
    assert by_default in where.get("mlruns/mlflow.db", []), where  # sqlite:///mlruns/mlflow.db in the cwd


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


@pytest.mark.slow
def test_on_the_embedded_lm_every_command_follows_MLFLOW_TRACKING_URI_to_a_server(tmp_path):
    """A team's own tracking server named only by MLflow's variable: the run, `runs`, `compare`
    and `export` all reach it, with no flag and no spec edit (real `mlflow server`, embedded LM)."""
    from tests.conftest import mlflow_server

    with mlflow_server(tmp_path) as url:
        env = _clean_env(MLFLOW_TRACKING_URI=url)
        sets = ["dataset.train=400", "dataset.dev=10", "dataset.test=8", "metric.summaries=[]", *NO_GENAI]
        ids = []
        for extra in (["optimizer.name=none", "optimizer.params={}", "program.params.candidates=0"], []):
            result = run_cli("run", str(SPEC), "--quiet", *[a for o in [*sets, *extra] for a in ("--set", o)],
                             cwd=tmp_path, env=env)
            assert result.returncode == 0, result.stderr[-2000:]
            ids.append(result.stdout.split("run_id=")[1].split()[0])
        assert not (tmp_path / "mlruns").exists()  # nothing went to the local default store
        listed = run_cli("runs", cwd=tmp_path, env=env)
        assert listed.returncode == 0 and all(i[:8] in listed.stdout for i in ids), listed.stderr[-2000:]
        compared = run_cli("compare", *ids, "--no-log", "--out", str(tmp_path / "cmp"), cwd=tmp_path, env=env)
        assert compared.returncode == 0 and "McNemar" in compared.stdout, compared.stderr[-2000:]
        exported = run_cli("export", ids[1], "--out", str(tmp_path / "bundle"), cwd=tmp_path, env=env)
        assert exported.returncode == 0 and "verified" in exported.stdout, exported.stderr[-2000:]


def test_a_store_used_in_process_never_becomes_the_next_default(tmp_path, monkeypatch):
    """MLflow exports the URI given to its fluent API into $MLFLOW_TRACKING_URI; in a notebook
    that would make one run's store the default of every later call. The user's value stays."""
    from workbench.tracking import DEFAULT_URI, default_uri, use_store

    monkeypatch.delenv("WORKBENCH_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    use_store(Store(tmp_path / "a").uri)
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert default_uri() == DEFAULT_URI
    mine = Store(tmp_path / "mine").uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mine)
    use_store(Store(tmp_path / "b").uri)
    assert os.environ["MLFLOW_TRACKING_URI"] == mine and default_uri() == mine
