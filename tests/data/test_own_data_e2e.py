"""A user's own CSV and own tool module, end to end: `workbench init`, `run` on the real
embedded LM into a real MLflow store, `compare`, `export` — all as CLI subprocesses."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import run_cli
from tests.data.conftest import write_spec, write_tickets, write_tool_task

pytestmark = pytest.mark.slow


def _finished(store, n: int) -> list[dict]:
    runs = store.runs()
    assert len(runs) == n and {r["status"] for r in runs} == {"FINISHED"}, runs
    return runs


def test_semicolon_csv_init_run_compare_export(tmp_path, store):
    (tmp_path / "data").mkdir()
    tickets = write_tickets(tmp_path / "data" / "tickets.csv")
    spec = tmp_path / "experiments" / "tickets.yaml"
    done = run_cli("init", str(tickets), "--task", "routing", "--out", str(spec))
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(spec.read_text())["dataset"]["params"]["options"] == {"sep": ";"}
    common = ["--set", "dataset.test=8", "--set", "lm.cache=false", *[x for o in store.overrides for x in ("--set", o)]]
    done = run_cli("run", str(spec), *common)
    assert done.returncode == 0, done.stderr
    assert "classical baselines on these 8 test items" in done.stderr  # progress goes to stderr
    done = run_cli("run", str(spec), *common, "--set", "optimizer.name=none", "--set", "optimizer.params={}")
    assert done.returncode == 0, done.stderr
    runs = _finished(store, 2)
    client = store.client()
    run = client.get_run(runs[0]["run_id"])
    assert run.data.metrics["n_examples"] == 8 and "data.leaked_eval_inputs" in run.data.metrics
    local = client.download_artifacts(run.info.run_id, "data_checks.json", str(tmp_path))
    checks = json.loads(open(local, encoding="utf-8").read())
    assert checks["labels"]["labels"] == ["cards", "refunds", "transfers"] and checks["carved"]
    done = run_cli("compare", "tickets", "--tracking-uri", store.uri, "--no-log", "--out", str(tmp_path / "cmp"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cmp" / "report.md").is_file()
    done = run_cli("export", "tickets", "--out", str(tmp_path / "bundle"), "--tracking-uri", store.uri)
    assert done.returncode == 0, done.stderr
    assert "(verified)" in done.stdout and (tmp_path / "bundle" / "manifest.json").is_file()


def test_tool_calling_with_the_users_tool_module(tmp_path, store):
    module, _ = write_tool_task(tmp_path)
    spec = write_spec(tmp_path / "shop.yaml", {"name": "file", "params": {
        "path": "calls.jsonl", "tools": ["order_status", "convert_price"], "split": {"validation": 0.2, "test": 0.3}},
        "dev": None}, task="tools", program={"name": "function_caller"},
        metric={"name": "ast_match", "summaries": ["error_types"]}, imports=[str(module)],
        tracking={"uri": store.uri, "artifact_root": str(store.root / "artifacts"), "experiment": "shop"})
    done = run_cli("run", str(spec), "--set", "lm.max_tokens=128", "--set", "lm.cache=false")
    assert done.returncode == 0, done.stderr
    [run] = _finished(store, 1)
    metrics = store.client().get_run(run["run_id"]).data.metrics
    assert metrics["n_examples"] == 3 and metrics["failure_rate"] == 0 and "calls.correct" in metrics
    done = run_cli("export", "shop", "--out", str(tmp_path / "bundle"), "--tracking-uri", store.uri)
    assert done.returncode == 0, done.stderr
    assert "(verified)" in done.stdout


def test_cross_fitted_finetune_on_the_users_csv(tmp_path, store):
    """`run --folds 2` on the embedded LM: each half of the CSV's test split is scored by an adapter trained on
    the other half (cut to 2 steps); the parent pools both halves, every item once."""
    write_tickets(tmp_path / "tickets.csv")
    spec = write_spec(tmp_path / "tickets.yaml", {"name": "file", "dev": None, "params": {
        "path": "tickets.csv", "options": {"sep": ";"}, "input": "message", "label": "queue", "id": "id",
        "split": {"validation": 0.1, "test": 0.3}}}, program={"name": "router", "params": {"candidates": 0}},
        tracking={"enabled": True})
    sets = ["--set", 'optimizer={"name": "finetune", "params": {"max_steps": 2, "batch_size": 4}}',
            "--set", "lm.cache=false", *[x for o in store.overrides for x in ("--set", o)]]
    done = run_cli("run", str(spec), *sets, "--folds", "2", env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _finished(store, 3)
    client = store.client()
    parent = next(client.get_run(r["run_id"]) for r in runs
                  if client.get_run(r["run_id"]).data.tags["workbench.kind"] == "cross_fitted")
    children = [client.get_run(r["run_id"]) for r in runs if r["run_id"] != parent.info.run_id]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    adapters = {c.data.tags["workbench.lora_sha256"] for c in children}
    assert len(adapters) == 2  # one adapter per fold, trained on different items
    assert all(c.data.metrics["finetune.steps"] == 2 for c in children)
    rows = store.predictions(parent.info.run_id)
    assert len(rows) == len({r["id"] for r in rows}) == parent.data.metrics["n_examples"] == 16
    assert {r["fold"] for r in rows} == {"1/2", "2/2"}
    assert parent.data.metrics["score"] == pytest.approx(sum(r["score"] for r in rows) / 16)
    assert all(r["predicted"] in {"cards", "refunds", "transfers"} or r["error_type"] for r in rows)
