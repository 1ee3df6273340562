"""optimizer.max_train: the optimizer works on a seeded sample of the train split, while the
program (the router's candidate classifier and demo pool) still builds from the whole split."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FAST_LM, SPEC, Store, run_cli
from workbench.runner import prepare, run
from workbench.spec import load_spec

SETS = [*FAST_LM, "dataset.train=400", "dataset.dev=4", "dataset.test=3", "tracking.enabled=false", "lm.cache=false"]


def _spec(*extra: str):
    return load_spec(SPEC, [*SETS, *extra])


def test_the_sample_is_seeded_in_split_order_and_the_program_keeps_the_whole_split():
    first, again = prepare(_spec("optimizer.max_train=25")), prepare(_spec("optimizer.max_train=25"))
    ids = [e.id for e in first.compile_trainset]
    assert len(ids) == 25 and ids == [e.id for e in again.compile_trainset]
    order = {e.id: i for i, e in enumerate(first.trainset)}
    assert [order[i] for i in ids] == sorted(order[i] for i in ids)  # a subset, in split order
    other_seed = prepare(_spec("optimizer.max_train=25", "optimizer.seed=7"))
    assert ids != [e.id for e in other_seed.compile_trainset]
    assert len(first.trainset) == 400 and len(first.program.demo_pool.examples) == 400


def test_no_limit_or_a_limit_above_the_split_means_the_whole_split():
    for extra in ([], ["optimizer.max_train=401"]):
        prepared = prepare(_spec(*extra))
        assert prepared.optimizer_train is None and prepared.compile_trainset is prepared.trainset


def test_the_optimizer_sees_only_the_sample():
    """LabeledFewShot takes k demos from what it is given: with max_train 3 it can only find 3,
    and they are the sample's."""
    spec = _spec("optimizer.name=LabeledFewShot", f"optimizer.params={json.dumps({'k': 10})}",
                 "optimizer.max_train=3")
    sample = {e.id for e in prepare(spec).compile_trainset}
    outcome = run(spec)
    demos = outcome.program.predict.demos
    assert len(demos) == 3 and {d["id"] for d in demos} == sample


@pytest.mark.slow
def test_on_the_embedded_lm_through_the_cli_copro_scores_candidates_on_the_sample_only(tmp_path):
    """A real `workbench run` subprocess, embedded LM, real MLflow store: COPRO with max_train 6
    plans and spends breadth x depth x 6 calls (plus proposals), not x 400, and the run says so."""
    store = Store(tmp_path / "mlruns")
    sets = ["dataset.train=400", "dataset.dev=4", "dataset.test=3", "lm.cache=false", "optimizer.name=COPRO",
            'optimizer.params={"breadth": 2, "depth": 1}', "optimizer.prompt_max_tokens=96",
            "optimizer.max_train=6", *store.overrides]
    result = run_cli("run", str(SPEC), *[a for o in sets for a in ("--set", o)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "400 train (optimizer: 6)" in result.stderr + result.stdout
    planned = next(x for x in result.stderr.splitlines() if x.startswith("planned LM calls"))
    assert "over 6 train items" in planned, planned
    client = store.client()  # COPRO's candidate evaluations are nested runs: take the parent
    [tracked] = [r for r in (client.get_run(row["run_id"]) for row in store.runs())
                 if "mlflow.parentRunId" not in r.data.tags]
    metrics = tracked.data.metrics
    assert tracked.info.status == "FINISHED" and 0 < metrics["compile_lm_calls"] <= 2 * (6 + 1), metrics


def test_copro_is_told_it_selects_on_its_training_sample_and_reports_no_dev_score(capsys):
    from workbench.console import Reporter

    spec = _spec("optimizer.name=COPRO", 'optimizer.params={"breadth": 2, "depth": 1}', "optimizer.max_train=5")
    outcome = run(spec, reporter=Reporter(quiet=False))
    err = capsys.readouterr().err
    assert "COPRO selects on the 5 training examples it is given, not on dev" in err
    assert "COPRO plans for about 50 training examples and gets 5" in err
    assert outcome.dev_score is None  # its score of its choice is in-sample: no dev-to-test gap to show
