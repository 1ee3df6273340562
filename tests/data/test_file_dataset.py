"""`dataset.name: file` and dataset folders: the user's files become a task without Python."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from metrics.bfcl_ast import ast_match
from tests.conftest import ROOT
from tests.data.conftest import CALLS, QUEUES, write_spec, write_tickets, write_tool_task
from workbench import registry
from workbench.data.file_tasks import accepted_form
from workbench.runner import prepare
from workbench.spec import load_spec


def _prepared(spec_path, *overrides):
    return prepare(load_spec(spec_path, list(overrides)))


def test_semicolon_csv_is_split_seeded_and_stratified(tmp_path, tickets):
    spec = write_spec(tmp_path / "s.yaml", {"name": "file", "params": {
        "path": "tickets.csv", "options": {"sep": ";"}, "input": "message", "label": "queue", "id": "id"},
        "dev": None, "test": None})
    loaded = load_spec(spec)
    assert loaded.dataset.params["path"] == str(tickets)  # relative to the spec's folder, stored absolute
    data = prepare(loaded).data
    sizes = {s: len(data.splits[s]) for s in ("train", "validation", "test")}
    assert sum(sizes.values()) == 54 and sizes["test"] == round(54 * 0.2)
    assert data.labels == sorted(QUEUES)
    assert set(data.splits["test"]["label"]) == set(QUEUES)  # stratified: every queue is tested
    assert data.splits["train"].column_names == ["id", "text", "label"]
    assert data.splits["test"][0]["id"].startswith("T")
    ids = [set(data.splits[s]["id"]) for s in ("train", "validation", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    again = _prepared(spec).data
    assert again.splits["test"]["id"] == data.splits["test"]["id"] and again.fingerprint == data.fingerprint
    other = _prepared(spec, "dataset.params.seed=5").data
    assert other.splits["test"]["id"] != data.splits["test"]["id"]
    assert data.stats["carved"]["test"].endswith("stratified")


def test_blank_rows_are_dropped_and_reported(tmp_path):
    write_tickets(tmp_path / "t.csv", blank_rows=4)
    spec = write_spec(tmp_path / "s.yaml", {"name": "file", "params": {
        "path": "t.csv", "options": {"sep": ";"}, "input": "message", "label": "queue"}, "dev": None})
    prepared = _prepared(spec)
    assert prepared.data.stats["dropped"] == {"train": 4}
    assert sum(len(s) for s in prepared.data.splits.values()) == 54
    assert any("4 rows dropped" in w for w in prepared.checks.warnings)
    assert prepared.checks.metrics()["data.rows_dropped"] == 4


def test_train_and_test_files_get_dev_from_train(tmp_path):
    write_tickets(tmp_path / "train.csv", repeat=2)
    write_tickets(tmp_path / "test.csv", repeat=1)
    spec = write_spec(tmp_path / "s.yaml", {"name": "file", "params": {
        "path": {"train": "train.csv", "test": "test.csv"}, "options": {"sep": ";"}, "input": "message",
        "label": "queue", "split": {"validation": 0.25}}, "dev": None})
    data = _prepared(spec).data
    assert len(data.splits["test"]) == 18  # the test file, whole
    assert len(data.splits["validation"]) == 9 and len(data.splits["train"]) == 27


def test_split_column_and_joined_inputs(tmp_path):
    rows = [{"subject": f"about {q}", "body": m, "queue": q, "part": ["train", "train", "dev", "test"][i % 4]}
            for q, ms in QUEUES.items() for i, m in enumerate(ms * 2)]
    pd.DataFrame(rows).to_csv(tmp_path / "mail.csv", index=False)
    spec = write_spec(tmp_path / "s.yaml", {"name": "file", "params": {
        "path": "mail.csv", "input": ["subject", "body"], "label": "queue", "split_column": "part"}, "dev": None})
    data = _prepared(spec).data
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [18, 9, 9]
    first = data.splits["train"][0]["text"]
    assert first.startswith("subject: about ") and "\nbody: " in first


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "disk", "glob"])
def test_other_formats_load_the_same_rows(tmp_path, tickets, kind):
    frame = pd.read_csv(tickets, sep=";")
    if kind == "jsonl":
        frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
        path = "t.jsonl"
    elif kind == "parquet":
        frame.to_parquet(tmp_path / "t.parquet")
        path = "t.parquet"
    elif kind == "disk":
        import datasets as hf

        hf.Dataset.from_pandas(frame).save_to_disk(str(tmp_path / "saved"))
        path = "saved"
    else:
        (tmp_path / "parts").mkdir()
        frame.iloc[:30].to_csv(tmp_path / "parts" / "a.csv", index=False)
        frame.iloc[30:].to_csv(tmp_path / "parts" / "b.csv", index=False)
        path = "parts/*.csv"
    spec = write_spec(tmp_path / "s.yaml", {"name": "file", "params": {"path": path, "input": "message",
                                                                       "label": "queue"}, "dev": None})
    data = _prepared(spec).data
    assert sum(len(s) for s in data.splits.values()) == 54 and data.labels == sorted(QUEUES)


def test_data_checks_find_leakage_rare_labels_and_imbalance(tmp_path):
    train = [(f"card question {i}", "cards") for i in range(40)] + [("one refund question", "refunds")]
    test = [("card question 1", "cards"), ("card question 2", "cards"), ("a new refund question", "refunds"),
            ("what about loans", "loans")]
    pd.DataFrame(train, columns=["text", "label"]).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(test, columns=["text", "label"]).to_csv(tmp_path / "test.csv", index=False)
    spec = write_spec(tmp_path / "s.yaml", {"name": "file", "params": {
        "path": {"train": "train.csv", "test": "test.csv"}, "split": {"validation": 0.1}}, "dev": None},
        program={"name": "router"})
    checks = _prepared(spec).checks
    assert checks.report["leakage"]["eval_in_train"] == 2
    labels = checks.report["labels"]
    assert labels["under_2_train"] == ["loans", "refunds"] and labels["eval_not_in_train"] == ["loans"]
    assert labels["imbalance_ratio"] >= 10
    text = " | ".join(checks.warnings)
    assert "2 of 4 test inputs also occur in train" in text and "fewer than 2 training rows" in text
    assert "imbalanced" in text and "never occur in train" in text


def test_tool_calls_from_jsonl_with_the_users_own_tool_module(tmp_path):
    module, _ = write_tool_task(tmp_path)
    spec = write_spec(tmp_path / "s.yaml", {"name": "file", "params": {
        "path": "calls.jsonl", "tools": ["order_status", "convert_price"], "split": {"validation": 0.2, "test": 0.3}},
        "dev": None}, task="tools", program={"name": "function_caller"}, metric={"name": "ast_match"},
        imports=[str(module)])
    prepared = _prepared(spec)
    assert "order_status" in registry.tools.names()
    offered = json.loads(prepared.data.splits["test"][0]["functions"])
    assert [f["name"] for f in offered] == ["order_status", "convert_price"]
    assert offered[1]["parameters"]["properties"]["currency"]["enum"] == ["EUR", "USD", "GBP"]
    example = prepared.evalset[0]
    [(name, arguments)] = json.loads(example.accepted)[0].items()
    gold = next(c for c in CALLS if c[0] == example.question)
    assert name == gold[1] and {k: v[0] for k, v in arguments.items()} == gold[2]
    import dspy

    right = dspy.Prediction(call={"name": gold[1], "arguments": gold[2]})
    assert ast_match(example, right) == 1.0
    assert ast_match(example, dspy.Prediction(call={"name": gold[1], "arguments": {}})) == 0.0


def test_expected_calls_forms():
    plain = {"name": "f", "arguments": {"x": 1}}
    assert accepted_form(plain) == [{"f": {"x": [1]}}]
    assert accepted_form([plain, {"name": "g"}]) == [{"f": {"x": [1]}}, {"g": {}}]
    assert accepted_form([{"f": {"x": [1, 2], "y": ["", "a"]}}]) == [{"f": {"x": [1, 2], "y": ["", "a"]}}]
    assert accepted_form({"f": {"x": 3}}) == [{"f": {"x": [3]}}]
    assert accepted_form("f(x=1)") is None and accepted_form([]) is None and accepted_form({"a": 1, "b": 2}) is None


def test_rag_questions_file_with_a_corpus(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"doc{i}.txt").write_text(f"Document {i} says the code word is word{i}. " * 3, encoding="utf-8")
    rows = [{"question": f"What is the code word of document {i}?", "answers": f"word{i}", "gold_passage": f"doc{i}.txt"}
            for i in range(4) for _ in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "qa.csv", index=False)
    spec = write_spec(tmp_path / "s.yaml", {"name": "file", "params": {"path": "qa.csv", "corpus": "docs"},
                                            "dev": None}, task="rag", program={"name": "rag"},
                      metric={"name": "answer_f1"})
    data = _prepared(spec).data
    assert len(data.corpus) == 4 and data.label_field == "answers"
    row = data.splits["train"][0]
    assert row["answers"][0].startswith("word") and row["gold_passage"] in {p["id"] for p in data.corpus}


def test_dataset_folder_registers_by_name_and_spec_params_override():
    loader = registry.datasets.get("support_tickets")
    data = loader()
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [1400, 200, 400]
    assert len(data.labels) == 7 and data.splits["test"][0]["id"].startswith("T")
    manifest = yaml.safe_load((ROOT / "datasets" / "support_tickets" / "dataset.yaml").read_text())
    assert manifest["params"]["options"] == {"sep": ";"}
    smaller = loader(split={"validation": 0.1, "test": 0.1})
    assert len(smaller.splits["test"]) == 200


def test_init_writes_a_spec_that_runs_and_never_overwrites(tmp_path, capsys):
    from workbench.cli import main

    tickets = write_tickets(tmp_path / "tickets.csv")
    out = tmp_path / "experiments" / "tickets.yaml"
    assert main(["init", str(tickets), "--task", "routing", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"workbench run {out}" in printed and "workbench export tickets" in printed
    spec = yaml.safe_load(out.read_text())
    params = spec["dataset"]["params"]
    assert params == {"path": "../tickets.csv", "options": {"sep": ";"}, "task": "routing", "input": "message",
                      "label": "queue"}
    assert spec["program"]["name"] == "router" and spec["optimizer"]["name"] == "retrieval_demos"
    prepared = prepare(load_spec(out))
    assert len(prepared.evalset) == spec["dataset"]["test"] == 11
    before = out.read_text()
    assert main(["init", str(tickets), "--task", "routing", "--out", str(out)]) == 2
    assert "never overwrites" in capsys.readouterr().err and out.read_text() == before
