"""`workbench run SPEC --resume RUN_ID`: a run killed mid-compile continues in the same MLflow
run, its completed LM calls answered by the cache (GEPA from its checkpoint folder), and ends
with the result an uninterrupted run gets; runs that cannot be resumed are refused in one line.
Recorded LM, real CLI subprocesses, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST_LM, ROOT, SPEC, Store, run_cli, run_main

SMALL = ["dataset.train=40", "dataset.dev=20", "dataset.test=12"]
OPTIMIZERS = {
    "MIPROv2": ["optimizer.name=MIPROv2", "optimizer.prompt_max_tokens=96",
                'optimizer.params={"auto": null, "num_candidates": 4, "num_trials": 40, "minibatch": false, '
                '"max_bootstrapped_demos": 1, "max_labeled_demos": 1}'],
    "GEPA": ["optimizer.name=GEPA", "optimizer.prompt_max_tokens=96",
             'optimizer.params={"max_metric_calls": 400, "reflection_minibatch_size": 2}'],
}


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _run_id(stdout: str) -> str:
    return next(x for x in stdout.splitlines() if x.startswith("run_id=")).split()[0][len("run_id="):]


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def _parents(store: Store) -> list:
    """The `workbench run` runs (optimizer trials nest under them as child runs)."""
    client = store.client()
    return client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.`workbench.kind` = 'run'")


def _metric(store: Store, run_id: str, key: str) -> float:
    return store.client().get_run(run_id).data.metrics[key]


@pytest.mark.parametrize("name", ["MIPROv2", pytest.param("GEPA", marks=pytest.mark.slow)])  # fast tier: one
def test_a_run_killed_mid_compile_resumes_in_the_same_run_with_the_uninterrupted_result(name, tmp_path):
    overrides = [*SMALL, *FAST_LM, *OPTIMIZERS[name]]
    # The uninterrupted run: its own store and cache.
    alone = Store(tmp_path / "alone")
    env_alone = {"WORKBENCH_CACHE": str(tmp_path / "cache-alone")}
    whole = run_cli("run", str(SPEC), "--quiet", *_sets(overrides + alone.overrides), env=env_alone)
    assert whole.returncode == 0, whole.stderr
    whole_id = _run_id(whole.stdout)
    whole_calls = _metric(alone, whole_id, "compile_lm_calls")

    store = Store(tmp_path / "mlruns")
    cache = tmp_path / "cache"
    env = {**os.environ, "WORKBENCH_CACHE": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(SPEC), "--quiet",
                             *_sets(overrides + store.overrides)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start_size, deadline = None, time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # kill once compile has cached some calls
        time.sleep(0.2)
        if not store.db.exists() or not [r for r in store.runs() if r["status"] == "RUNNING"]:
            continue
        start_size = _size(cache) if start_size is None else start_size
        if _size(cache) > start_size + 100_000:
            break
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    [killed] = _parents(store)
    assert killed.info.status == "RUNNING"
    run_id = killed.info.run_id

    resumed = run_cli("run", str(SPEC), "--quiet", "--resume", run_id, *_sets(overrides + store.overrides),
                      env={"WORKBENCH_CACHE": str(cache)})
    assert resumed.returncode == 0, resumed.stderr
    assert _run_id(resumed.stdout) == run_id
    [run] = _parents(store)
    assert run.info.status == "FINISHED"
    data = store.client().get_run(run_id).data
    assert data.tags["workbench.resumed"] == "1"
    assert data.metrics["score"] == _metric(alone, whole_id, "score")  # the same program, the same answers
    assert 0 < data.metrics["compile_lm_calls"] < whole_calls  # the killed run's calls came back from the cache
    if name == "GEPA":  # GEPA's own checkpoint lives in the run's artifact folder
        artifacts = Path(store.client().get_run(run_id).info.artifact_uri.removeprefix("file://"))
        assert (artifacts / "checkpoints" / "gepa" / "gepa_state.bin").is_file()


def test_runs_that_cannot_be_resumed_are_refused_in_one_line_before_any_lm_call(tmp_path):
    store = Store(tmp_path / "mlruns")
    overrides = [*SMALL, *FAST_LM, "optimizer.name=none", "optimizer.params={}", *store.overrides]
    done = run_main("run", str(SPEC), "--quiet", *_sets(overrides))
    assert done.returncode == 0, done.stderr
    run_id = _run_id(done.stdout)
    cases = [
        (["--resume", run_id], "is FINISHED: nothing to resume"),
        (["--resume", "0" * 32], "no run '" + "0" * 32),
        (["--resume", "abc"], "not an MLflow run id"),
        (["--resume", run_id, "--seeds", "2"], "does not combine with --seeds"),
    ]
    for args, needle in cases:
        result = run_main("run", str(SPEC), *args, *_sets(overrides))
        assert result.returncode == 2, (args, result.stderr)
        assert needle in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # A failed run of another spec: refused by fingerprint, both named.
    client = store.client()
    client.set_terminated(run_id, "FAILED")
    other = run_main("run", str(SPEC), "--resume", run_id, *_sets([*overrides, "dataset.test=13"]))
    assert other.returncode == 2 and "was started from another spec (fingerprint" in other.stderr
    assert client.get_run(run_id).info.status == "FAILED"  # untouched
    assert json.dumps(store.runs()) and len(store.runs()) == 1  # nothing new was started
