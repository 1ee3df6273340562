"""`workbench promote`: MLflow Model Registry versions, champion/challenger by the paired test,
and `mlflow models serve -m models:/NAME@champion` answering with the promoted program."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT, free_port, run_cli, run_main, wait_for_http


def _promote(store, run, *extra):
    """The first promotion through a real process; later ones in this process (same CLI code)."""
    if not _promote.done:
        result = run_cli("promote", run, "--name", "router", "--tracking-uri", store.uri, *extra)
        _promote.done = True
    else:
        result = run_main("promote", run, "--name", "router", "--tracking-uri", store.uri, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


_promote.done = False


def _aliases(client):
    model = client.get_registered_model("router")
    return {alias: str(version) for alias, version in model.aliases.items()}


@pytest.fixture(scope="module")
def registry(routing_store):
    """zero_shot promoted first (champion v1), then good (beats it: champion v2, v1 challenger)."""
    store, runs = routing_store
    client = store.client()
    scores = {k: client.get_run(v).data.metrics["score"] for k, v in runs.items()}
    assert scores["good"] > scores["zero_shot"] + 0.3  # demos + candidates vs zero-shot over 10 labels
    first = _promote(store, runs["zero_shot"])
    second = _promote(store, runs["good"])
    return store, runs, first, second


def test_first_version_is_champion_and_a_better_run_takes_over(registry):
    store, runs, first, second = registry
    assert "version 1 as champion" in first
    assert "version 2 as champion" in second and "beats the champion" in second and "McNemar" in second
    client = store.client()
    assert _aliases(client) == {"champion": "2", "challenger": "1"}
    v2 = client.get_model_version("router", "2")
    assert v2.tags["workbench.run_id"] == runs["good"] and v2.tags["workbench.forced"] == "false"
    promo_runs = [r for r in store.runs() if r["name"] == "promote-router"]
    assert len(promo_runs) == 2 and {r["status"] for r in store.runs()} == {"FINISHED"}


def test_a_worse_run_becomes_challenger_unless_forced(registry):
    store, runs, *_ = registry
    client = store.client()
    out = _promote(store, runs["zero_shot"])
    assert "as challenger" in out and "does not beat the champion" in out
    assert _aliases(client) == {"champion": "2", "challenger": "3"}
    forced = _promote(store, runs["zero_shot"], "--force")
    assert "as champion" in forced and "forced" in forced
    assert _aliases(client) == {"champion": "4", "challenger": "2"}
    assert client.get_model_version("router", "4").tags["workbench.forced"] == "true"
    again = run_main("promote", runs["zero_shot"], "--name", "router", "--tracking-uri", store.uri)
    assert again.returncode == 2 and "already the champion" in again.stderr
    _promote(store, runs["good"], "--force")  # leave the good run as champion for the serving test


def test_mlflow_models_serve_answers_with_the_champion(registry, tmp_path):
    store, *_ = registry
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri, "MLFLOW_REGISTRY_URI": store.uri,
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}  # it starts `uvicorn` by name
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/router@champion",
                             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", proc, seconds=180, what="mlflow models serve",
                      log=lambda: (tmp_path / "serve.log").read_text())
        response = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=120,
                              json={"dataframe_records": [{"text": "what is my checking account balance"},
                                                          {"text": "play some jazz music"}]})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == 2 and all(p["label"] for p in predictions)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_promote_and_serve_bad_input(registry):
    store, runs, *_ = registry
    bad_name = run_main("promote", runs["good"], "--name", "no spaces!", "--tracking-uri", store.uri)
    assert bad_name.returncode == 2 and "--name" in bad_name.stderr
    missing = run_cli("serve", "models:/nothing@champion", "--tracking-uri", store.uri, "--port", "1")
    assert missing.returncode == 2 and "cannot fetch the model" in missing.stderr
    assert "Traceback" not in bad_name.stderr + missing.stderr
