"""`workbench run --seeds N`: child runs under one parent that logs the mean and its CI."""

from __future__ import annotations

import pytest

from tests.conftest import FAST_LM, SPEC, run_cli


def test_two_seeds_make_two_child_runs_and_a_parent_summary(store):
    sets = sum((["--set", o] for o in store.overrides + FAST_LM + ["dataset.test=6", "dataset.dev=4",
                                                                    "dataset.train=2000"]), [])
    result = run_cli("run", str(SPEC), *sets, "--seeds", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "over 2 seeds" in result.stdout and "95% CI over seeds" in result.stdout
    client = store.client()
    runs = {r["run_id"]: client.get_run(r["run_id"]) for r in store.runs()}
    parents = [r for r in runs.values() if r.data.tags.get("workbench.kind") == "multi_seed"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs.values() if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in runs.values())
    assert {c.data.params["optimizer.seed"] for c in children} == {"0", "1"}
    mean = sum(c.data.metrics["score"] for c in children) / 2
    assert parent.data.metrics["score_mean"] == pytest.approx(mean)
    assert parent.data.metrics["score_ci_low"] <= mean <= parent.data.metrics["score_ci_high"]
    assert "seed_scores.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}
