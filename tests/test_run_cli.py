"""`workbench run / eval / runs` as real subprocesses on a temp store: the recorded LM for the
tracking checks, a slow mock endpoint for the runs that get interrupted or killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import FAST_LM, ROOT, SPEC, run_cli

SMALL = ["--set", "dataset.test=12", "--set", "dataset.dev=10", "--set", "dataset.train=2000", *[a for o in FAST_LM for a in ("--set", o)]]


def _sets(overrides: list[str]) -> list[str]:
    return sum((["--set", o] for o in overrides), [])


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One small default run shared by the checks below (the expensive part)."""
    from tests.conftest import Store

    store = Store(tmp_path_factory.mktemp("run") / "mlruns")
    with pytest.MonkeyPatch.context() as patch:
        # Its own response cache for this module: other tests may have answered these items.
        patch.setenv("WORKBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        result = run_cli("run", str(SPEC), *SMALL, *_sets(store.overrides))
        assert result.returncode == 0, result.stderr[-3000:]
        [row] = store.runs()
        yield store, row["run_id"], result


def test_a_run_whose_stderr_is_a_pipe_prints_plain_progress_lines(first_run):
    """CI logs and nohup: no terminal, so no live bar; the evaluation still reports its last item
    and each phase says it is done, as plain lines."""
    _, _, result = first_run
    lines = result.stderr.splitlines()
    assert any(x.startswith("evaluating on test 12/12 · score ") and " · 12 LM calls · " in x for x in lines)
    assert any(x.startswith("compiling with retrieval_demos · 0 LM calls · ") and x.endswith(" · done") for x in lines)
    assert "━" not in result.stderr  # rich's bar is not drawn into a pipe


def test_run_is_tracked_completely(first_run):
    store, run_id, result = first_run
    client = store.client()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    m, p, t = run.data.metrics, run.data.params, run.data.tags
    for key in ("score", "score_ci_low", "score_ci_high", "parse_failure_rate", "lm_calls", "prompt_tokens",
                "completion_tokens", "seconds", "compile_seconds", "compile_lm_calls", "macro_f1",
                "baseline.tfidf_logreg.score", "baseline.tfidf_1nn.score"):
        assert key in m, key
    assert m["score_ci_low"] <= m["score"] <= m["score_ci_high"]
    assert m["n_examples"] == 12 and m["lm_calls"] == 12 and m["compile_lm_calls"] == 0
    assert p["dataset.name"] == "clinc150_domains" and p["optimizer.params.k"] == "5"
    assert t["workbench.task"] == "routing" and t["workbench.lm"].startswith("recorded/synthetic")
    assert len(t["workbench.dataset_fingerprint"]) == 16 and t["mlflow.source.git.commit"]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"predictions.json", "program.json", "prompts.md", "prompt_example.md", "confusion_matrix.png",
            "confusion_matrix.csv", "per_label.csv", "spec.json"} <= artifacts
    table = pd.DataFrame(**json.loads(open(store.root / "artifacts" / "routing" / run_id / "artifacts" /
                                           "predictions.json").read()))
    assert len(table) == 12 and {"id", "text", "gold", "predicted", "score", "error_type", "candidates"} <= set(table)
    assert table.score.mean() == pytest.approx(m["score"])
    prompts = (store.root / "artifacts" / "routing" / run_id / "artifacts" / "prompt_example.md").read_text()
    assert "label must be one of:" in prompts and prompts.count("## assistant") == 5
    assert "tfidf_logreg (classical baseline)" in result.stdout


def test_rerun_is_served_from_cache(first_run):
    store, _, _ = first_run
    result = run_cli("run", str(SPEC), *SMALL, *_sets(store.overrides), "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("run_id=") and "score=" in line
    run_id = line.split()[0].split("=")[1]
    metrics = store.client().get_run(run_id).data.metrics
    assert metrics["lm_calls"] == 0  # every answer came from the on-disk cache


def test_eval_reloads_to_the_same_predictions(first_run, tmp_path):
    store, run_id, _ = first_run
    program = store.root / "artifacts" / "routing" / run_id / "artifacts" / "program.json"
    state = json.loads(program.read_text())
    assert state["demo_pool"]["k"] == 5 and len(state["demo_pool"]["examples"]) == 2000
    result = run_cli("eval", str(SPEC), "--program", str(program), *SMALL, *_sets(store.overrides),
                     "--set", "lm.cache=false", "--quiet")  # no cache: the LM really answers again
    assert result.returncode == 0, result.stderr[-2000:]
    eval_id = result.stdout.strip().splitlines()[-1].split()[0].split("=")[1]
    client = store.client()
    assert client.get_run(eval_id).data.metrics["lm_calls"] == 12
    assert client.get_run(eval_id).data.tags["workbench.kind"] == "eval"

    def predictions(rid):
        path = store.root / "artifacts" / "routing" / rid / "artifacts" / "predictions.json"
        return pd.DataFrame(**json.loads(path.read_text())).set_index("id").predicted

    pd.testing.assert_series_equal(predictions(run_id), predictions(eval_id))


def test_runs_lists_recent_runs(first_run):
    store, run_id, _ = first_run
    result = run_cli("runs", "--tracking-uri", store.uri)
    assert result.returncode == 0, result.stderr
    assert run_id[:12] in result.stdout and "FINISHED" in result.stdout and "retrieval_demos" in result.stdout


def _start_long_run(store, mock_endpoint) -> subprocess.Popen:
    """A run that takes a minute (300 items at 0.2 s per call), returned once it is inside its
    evaluation loop."""
    server = mock_endpoint(latency=0.2)
    args = [sys.executable, "-m", "workbench.cli", "run", str(SPEC), "--set", "dataset.test=300",
            "--set", "dataset.train=2000",
            "--set", "lm.cache=false", *_sets(store.overrides), *_sets(_endpoint(server))]
    # A shell without job control starts background commands with SIGINT ignored, and children
    # inherit that (Python then installs no KeyboardInterrupt handler): `make test &` made the
    # SIGINT case below fail with exit 0. The child gets the default disposition back.
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ}, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while time.time() < deadline and not any(r["status"] == "RUNNING" for r in store.runs()):
        time.sleep(0.2)
    while time.time() < deadline and server.counts["completion"] < 3:  # evaluating
        time.sleep(0.2)
    return proc


def _endpoint(server) -> list[str]:
    return ["lm.backend=openai", f"lm.api_base={server.base_url}", f"lm.model={server.model}"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_is_marked_killed(sig, store, mock_endpoint):
    proc = _start_long_run(store, mock_endpoint)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "KILLED" in err and "Traceback" not in err
    assert [r["status"] for r in store.runs()] == ["KILLED"]


def test_run_of_a_dead_process_is_failed_by_the_next_run(store, mock_endpoint):
    """SIGKILL (like a segfault or the OOM killer) gives no chance to end the run; the next
    run in the experiment finds its process gone and marks it FAILED."""
    proc = _start_long_run(store, mock_endpoint)
    proc.kill()
    proc.communicate(timeout=60)
    assert [r["status"] for r in store.runs()] == ["RUNNING"]
    result = run_cli("run", str(SPEC), "--set", "dataset.test=2", "--set", "dataset.train=2000", "--quiet",
                     *_sets(store.overrides), *_sets(FAST_LM))
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(r["status"] for r in store.runs()) == ["FAILED", "FINISHED"]
    dead = next(r for r in store.runs() if r["status"] == "FAILED")
    assert "died" in store.client().get_run(dead["run_id"]).data.tags["workbench.reaped"]


def test_broken_endpoint_fails_the_run_cleanly(store):
    """A dead endpoint is caught by the preflight (exit 2, no run); with the preflight off and
    no retries, every LM call fails and eval.max_failures=2 stops the run FAILED, exit 1."""
    dead = ["--set", "lm.backend=openai", "--set", "lm.api_base=http://127.0.0.1:9/v1", "--set", "lm.model=nothing"]
    result = run_cli("run", str(SPEC), "--set", "dataset.test=10", "--set", "dataset.train=2000",
                     *_sets(store.overrides), *dead)
    assert result.returncode == 2 and "lm.api_base: cannot reach" in result.stderr and store.runs() == []
    result = run_cli("run", str(SPEC), "--set", "dataset.test=10", "--set", "dataset.train=2000",
                     *_sets(store.overrides), *dead,
                     "--set", "lm.preflight=false", "--set", "lm.retries=0", "--set", "eval.max_failures=2")
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "predictions failed" in lines[0] and "Traceback" not in result.stderr
    assert [r["status"] for r in store.runs()] == ["FAILED"]
