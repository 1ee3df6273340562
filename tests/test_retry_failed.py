"""`workbench eval --retry-failed RUN`: only the examples the endpoint lost are paid for again."""

from __future__ import annotations

import json

import pytest

from tests.conftest import endpoint_spec
from workbench.cli import main


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def _sets(store) -> list[str]:
    return sum((["--set", o] for o in store.overrides), [])


def _table(store, run_id: str, tmp_path) -> list[dict]:
    return store.predictions(run_id)


def test_retry_pays_for_the_failures_only_and_scores_like_a_clean_run(tmp_path, store, capsys, mock_endpoint):
    server = mock_endpoint(faults=["ok"] * 9 + ["503"], retry_after=0)  # 10% of calls fail, no retries
    spec = endpoint_spec(tmp_path / "spec.yaml", server, test=30, lm={"retries": 0})
    code, err = _cli(capsys, "run", str(spec), *_sets(store))
    assert code == 1 and "3 of 30 examples" in err  # over eval.max_lm_error_rate: FAILED
    [flaky] = store.runs()
    clean_server = mock_endpoint()
    code, _ = _cli(capsys, "run", str(endpoint_spec(tmp_path / "clean.yaml", clean_server, test=30)), *_sets(store))
    assert code == 0
    clean = next(r for r in store.runs() if r["status"] == "FINISHED")

    server.faults, server._cycle = [], None  # the endpoint has recovered
    before = server.stats()["completions"]
    code, err = _cli(capsys, "eval", "--retry-failed", flaky["run_id"][:10], "--tracking-uri", store.uri)
    assert code == 0, err
    assert "retrying 3 examples lost to LM call failures" in err
    assert server.stats()["completions"] - before == 3  # exactly the lost examples, nothing else
    retried = next(r for r in store.runs() if r["run_id"] not in (flaky["run_id"], clean["run_id"]))
    got = store.client().get_run(retried["run_id"]).data
    assert retried["status"] == "FINISHED" and got.tags["workbench.retry_of"] == flaky["run_id"]
    assert got.tags["workbench.kind"] == "eval"
    assert got.metrics["lm_calls"] == 3 and got.metrics["n_examples"] == 30 and got.metrics["lm_error_rate"] == 0
    assert got.metrics["score"] == store.client().get_run(clean["run_id"]).data.metrics["score"]
    same = store.client().get_run(flaky["run_id"]).data.tags["workbench.eval_fingerprint"]
    assert got.tags["workbench.eval_fingerprint"] == same  # pairs with its siblings in compare
    rows = _table(store, retried["run_id"], tmp_path / "t")
    assert [r["id"] for r in rows] == [r["id"] for r in _table(store, clean["run_id"], tmp_path / "c")]


def test_a_run_stopped_by_the_breaker_gets_its_unreached_examples_too(tmp_path, store, capsys, mock_endpoint):
    server = mock_endpoint(down_after=5)
    spec = endpoint_spec(tmp_path / "spec.yaml", server, test=20, lm={"retries": 0},
                         eval={"max_consecutive_lm_errors": 3})
    code, _ = _cli(capsys, "run", str(spec), *_sets(store))
    assert code == 1
    [stopped] = store.runs()
    server.down_after = None
    code, err = _cli(capsys, "eval", "--retry-failed", stopped["run_id"], "--tracking-uri", store.uri)
    assert code == 0, err
    assert "retrying 3 examples lost to LM call failures and 12 never reached" in err
    retried = next(r for r in store.runs() if r["run_id"] != stopped["run_id"])
    assert store.client().get_run(retried["run_id"]).data.metrics["n_examples"] == 20


def test_bad_retries_are_one_line(tmp_path, store, capsys, mock_endpoint):
    server = mock_endpoint()
    spec = endpoint_spec(tmp_path / "spec.yaml", server, test=10)
    assert _cli(capsys, "run", str(spec), *_sets(store))[0] == 0
    [ok] = store.runs()
    client = store.client()
    running = client.create_run(client.get_run(ok["run_id"]).info.experiment_id).info.run_id
    cases = [
        (["--retry-failed", ok["run_id"]], "lost no examples to LM call failures"),
        (["--retry-failed", running], "still RUNNING"),
        (["--retry-failed", "0123456789abcdef"], "neither an experiment nor a run id"),
        ([str(spec), "--retry-failed", ok["run_id"]], "give no SPEC or --program"),
        ([str(spec)], "give SPEC and --program PATH, or --retry-failed RUN"),
    ]
    for args, needle in cases:
        code, err = _cli(capsys, "eval", *args, "--tracking-uri", store.uri)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], (args, err)
    assert len(store.runs()) == 2  # the ok run and the hand-made RUNNING one: nothing new


@pytest.mark.slow
def test_retry_failed_on_the_embedded_lm_through_a_real_subprocess(tmp_path, store):
    """A real run on the embedded LM whose evaluation 'lost' examples is retried end to end."""
    from tests.conftest import SPEC, run_cli

    sets = _sets(store)
    ran = run_cli("run", str(SPEC), "--set", "dataset.test=12", "--set", "lm.cache=false", *sets)
    assert ran.returncode == 0, ran.stderr[-2000:]
    [run] = store.runs()
    # mark two rows as lost to the endpoint, as a flaky endpoint would have left them
    client = store.client()
    local = client.download_artifacts(run["run_id"], "predictions.json", str(tmp_path))
    data = json.loads(open(local).read())
    cols = data["columns"]
    for row in data["data"][:2]:
        row[cols.index("error_type")], row[cols.index("score")] = "lm_error", 0.0
    artifact = store.root / "artifacts" / "routing" / run["run_id"] / "artifacts" / "predictions.json"
    artifact.write_text(json.dumps(data))
    retried = run_cli("eval", "--retry-failed", run["run_id"], "--tracking-uri", store.uri)
    assert retried.returncode == 0, retried.stderr[-2000:]
    new = next(r for r in store.runs() if r["run_id"] != run["run_id"])
    metrics = client.get_run(new["run_id"]).data.metrics
    assert metrics["lm_calls"] == 2 and metrics["n_examples"] == 12
    assert metrics["score"] == client.get_run(run["run_id"]).data.metrics["score"]  # same answers again
