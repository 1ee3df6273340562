"""optimizer.max_train: the optimizer works on a seeded sample of the train split, while the
program (the router's candidate classifier and demo pool) still builds from the whole split."""

from __future__ import annotations

import json

from tests.conftest import FAST_LM, SPEC
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
