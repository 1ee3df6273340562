"""Cross-fitting a user's own data: `dataset.fold: i/k` and `workbench run SPEC --folds k`."""

from __future__ import annotations

import pytest

from tests.conftest import FAST_LM, run_main
from tests.data.conftest import QUEUES, write_spec, write_tickets
from workbench.data.loading import load_data
from workbench.errors import UserError
from workbench.spec import load_spec

PARAMS = {"path": "tickets.csv", "options": {"sep": ";"}, "input": "message", "label": "queue", "id": "id",
          "split": {"validation": 0.1, "test": 0.5}}


def _tickets_spec(tmp_path, **dataset):
    write_tickets(tmp_path / "tickets.csv")
    return write_spec(tmp_path / "tickets.yaml", {"name": "file", "params": PARAMS, "dev": None, **dataset})


def _view(spec, *overrides):
    return load_data(load_spec(spec, list(overrides))).data


def _ids(data, split):
    return set(data.splits[split]["id"])


def test_folds_score_every_test_item_once_and_train_on_the_other_parts(tmp_path):
    spec = _tickets_spec(tmp_path)
    whole = _view(spec)
    folds = [_view(spec, f"dataset.fold={i}/3") for i in (1, 2, 3)]
    tests = [_ids(f, "test") for f in folds]
    assert set().union(*tests) == _ids(whole, "test") and sum(map(len, tests)) == len(_ids(whole, "test"))
    assert max(map(len, tests)) - min(map(len, tests)) <= 1  # parts differ in size by at most one
    for fold, own in zip(folds, tests):
        train = _ids(fold, "train")
        assert not train & own  # never trains on an item it is scored on
        assert train == _ids(whole, "train") | (_ids(whole, "test") - own)  # the other parts join train
        assert _ids(fold, "validation") == _ids(whole, "validation")
        assert fold.stats["fold"]["test items"] == len(own)
    assert _view(spec, "dataset.fold=2/3").splits["test"]["id"] == folds[1].splits["test"]["id"]  # seeded
    assert len({whole.fingerprint, *(f.fingerprint for f in folds)}) == 4
    other_seed = [_ids(_view(spec, f"dataset.fold={i}/3", "dataset.seed=1"), "test") for i in (1, 2, 3)]
    assert other_seed != tests and set().union(*other_seed) == set().union(*tests)


def test_a_training_row_repeating_a_test_items_words_is_left_out(tmp_path):
    write_tickets(tmp_path / "test.csv", repeat=1)  # T1 is "my card has not arrived (ticket 1)"
    (tmp_path / "train.csv").write_text("id;message;queue\n" + "".join(
        f"R{n};{m} again;{q}\n" for n, (q, m) in enumerate((q, m) for q, ms in QUEUES.items() for m in ms))
        + "X1;MY CARD has not arrived!! (ticket 1);cards\n", encoding="utf-8")
    (tmp_path / "dev.csv").write_text("id;message;queue\nV1;card lost;cards\nV2;refund late;refunds\n")
    spec = write_spec(tmp_path / "s.yaml", {"name": "file", "dev": None, "params": {
        **PARAMS, "path": {"train": "train.csv", "validation": "dev.csv", "test": "test.csv"}, "split": {}}})
    assert "X1" in _ids(_view(spec), "train")
    folds = [_view(spec, f"dataset.fold={i}/2") for i in (1, 2)]
    holding, other = sorted(folds, key=lambda f: "T1" not in _ids(f, "test"))
    assert "T1" in _ids(holding, "test") and "X1" not in _ids(holding, "train")
    assert holding.stats["fold"]["left out of train, same inputs as a test item"] == 1
    assert "X1" in _ids(other, "train") and "T1" in _ids(other, "train")


def test_dataset_test_samples_the_folds_own_part(tmp_path):
    spec = _tickets_spec(tmp_path)
    fold = _view(spec, "dataset.fold=1/2")
    sampled = _view(spec, "dataset.fold=1/2", "dataset.test=4")
    assert len(_ids(sampled, "test")) == 4 and _ids(sampled, "test") <= _ids(fold, "test")


def test_run_folds_pools_the_children_under_one_parent(tmp_path, store):
    spec = _tickets_spec(tmp_path)
    sets = sum((["--set", o] for o in [*store.overrides, *FAST_LM, "tracking.enabled=true"]), [])
    done = run_main("run", str(spec), *sets, "--folds", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cross-fitted accuracy" in done.stdout and "n=27" in done.stdout
    client = store.client()
    runs = [client.get_run(r["run_id"]) for r in store.runs()]
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 4
    parent = next(r for r in runs if r.data.tags["workbench.kind"] == "cross_fitted")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.data.params["dataset.fold"] for c in children) == ["1/3", "2/3", "3/3"]
    rows = store.predictions(parent.info.run_id)
    assert sorted(r["id"] for r in rows) == sorted(_ids(_view(spec), "test"))  # every item once
    scores = [r["score"] for r in rows]
    assert parent.data.metrics["score"] == pytest.approx(sum(scores) / len(scores))
    assert parent.data.metrics["n_examples"] == 27 and parent.data.metrics["folds"] == 3
    by_child = {c.data.params["dataset.fold"]: c.data.metrics["score"] for c in children}
    for fold, score in by_child.items():
        mine = [r["score"] for r in rows if r["fold"] == fold]
        assert score == pytest.approx(sum(mine) / len(mine))
    assert parent.data.metrics["score_ci_low"] <= parent.data.metrics["score"] <= parent.data.metrics["score_ci_high"]
    assert "fold_scores.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    logreg = [(c.data.metrics["baseline.tfidf_logreg.score"], c.data.metrics["n_examples"]) for c in children]
    assert parent.data.metrics["baseline.tfidf_logreg.score"] == pytest.approx(sum(s * n for s, n in logreg) / 27)
    assert "classical baselines cross-fitted on the same items: tfidf_1nn" in done.stdout
    # the pooled table pairs item by item with an ordinary run on the same test split
    plain = run_main("run", str(spec), *sets, "--quiet")
    assert plain.returncode == 0, plain.stderr[-2000:]
    plain_id = plain.stdout.split("run_id=")[1].split()[0]
    compared = run_main("compare", parent.info.run_id, plain_id, "--no-log", "--out", str(tmp_path / "cmp"),
                        "--tracking-uri", store.uri)
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert "27" in compared.stdout
    # the experiment by name: the cross-fit counts as its pooled parent, not as three runs on parts of the items
    by_name = run_main("compare", "tickets", "--no-log", "--out", str(tmp_path / "cmp2"), "--tracking-uri", store.uri)
    assert by_name.returncode == 0, by_name.stderr[-2000:]
    assert parent.info.run_id[:8] in by_name.stdout and plain_id[:8] in by_name.stdout
    assert not any(c.info.run_id[:8] in by_name.stdout for c in children)
    # gating against the experiment takes its best program, not the cross-fit, even where that scored higher
    from workbench.gate.command import resolve_baseline

    client.log_metric(parent.info.run_id, "score", 1.0, step=1)
    assert resolve_baseline(client, "tickets", None)[0].run_id == plain_id
    assert resolve_baseline(client, parent.info.run_id, None)[0].run_id == parent.info.run_id  # named: taken
    client.delete_run(plain_id)
    with pytest.raises(UserError, match="only cross-fitted runs"):
        resolve_baseline(client, "tickets", None)


def test_the_python_api_pools_without_tracking(tmp_path):
    import workbench

    spec = workbench.load_spec(_tickets_spec(tmp_path), FAST_LM)
    assert not spec.tracking.enabled
    outcome = workbench.run_folds(spec, 2)
    assert outcome.run_id is None and all(o.run_id is None for o in outcome.outcomes)
    assert sorted(outcome.table["id"]) == sorted(_ids(load_data(spec).data, "test"))
    assert outcome.score == pytest.approx(outcome.table["score"].mean())
    assert set(outcome.baselines) == {"tfidf_1nn", "tfidf_logreg"}
    with pytest.raises(workbench.UserError, match="at least 2 folds"):
        workbench.run_folds(spec, 1)
