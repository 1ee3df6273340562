"""BFCL v4 function calling: `simple_python` (400, one function given), `multiple` (200,
choose among 2-4), with BFCL's accepted argument values for AST matching; `exec_simple`
(100) and `exec_multiple` (50), whose accepted calls are executed (`gold_calls`).

BFCL has no training split. So that a benchmark can score *all* items of a category and
an optimizer still has examples to learn from, each category's view uses the items of its
partner category as train (and a seeded 20% of them, at most 40, as dev): demos teach the
call format, and no test item is ever shown as a demo. BFCL reuses some requests across
categories word for word (96 of simple_python's 400 are also `multiple` items, with the same
function); those partner items are left out of train and dev, or a retrieved demo would carry
the test item's own answer. `train_from: [categories]` (a dataset param) trains on other categories
instead of or besides the partner (simple_python's 80 `multiple` items are few to fine-tune on; the
exec categories share no request with it); the view's own category is never among them.
`fold: "i/k"` cross-fits instead: the category is split into k seeded parts, the i-th is the test split
and the other k-1 parts join train, so k runs (i = 1..k) score every item once, each by a program that
never trained on it, and the training calls come from the category under test. `functions`, `accepted` and
`gold_calls` are JSON strings (their shapes differ per item, which Arrow cannot hold).
Exec ground truth (call strings such as `f(n=20, p=1/6)`) is read by AST walk, never eval,
and also stored in AST form, so AST matching works on every category.
"""

from __future__ import annotations

import json
import random

import datasets as hf

from workbench.data import TaskData, data_file, fingerprint_files, jsonl_records
from workbench.data.folds import fold_parts, parse_fold
from workbench.errors import UserError
from workbench.registry import dataset
from workbench.tools.arith import ArithError, parse_call

CATEGORIES = ("simple_python", "multiple", "exec_simple", "exec_multiple")
PARTNERS = {"simple_python": "multiple", "multiple": "simple_python", "exec_simple": "exec_multiple",
            "exec_multiple": "exec_simple"}
DEV_SIZE = 40
DEV_SEED = 7
FOLD_SEED = 11


def _jsonl(path) -> list[dict]:
    return [record for _, record in jsonl_records(path)]


def load_category(category: str) -> tuple[list[dict], list]:
    """Rows `{id, question, functions, accepted}` of one BFCL category, and its files."""
    questions = data_file("bfcl", f"BFCL_v4_{category}.json")
    answers = data_file("bfcl", f"BFCL_v4_{category}.possible_answer.json")
    truth = {row["id"]: row for row in _jsonl(answers)}
    rows = []
    for row in _jsonl(questions):
        if row["id"] not in truth:
            raise UserError(f"{row['id']} has no accepted answer", file=str(answers), field="id")
        user = [turn["content"] for turn in row["question"][0] if turn["role"] == "user"]
        gold = truth[row["id"]]["ground_truth"]
        calls: list[str] = []
        if gold and isinstance(gold[0], str):  # exec: call strings
            calls = gold
            try:
                parsed = [parse_call(text) for text in calls]
            except ArithError as exc:
                raise UserError(str(exc), file=str(answers), field=f"{row['id']}.ground_truth") from None
            gold = [{c["name"]: {k: [v] for k, v in c["arguments"].items()}} for c in parsed]
        rows.append({"id": row["id"], "question": user[-1], "functions": json.dumps(row["function"]),
                     "accepted": json.dumps(gold), "gold_calls": json.dumps(calls),
                     "result_type": (truth[row["id"]].get("execution_result_type") or [""])[0]})
    return rows, [questions, answers]


def train_sources(category: str, train_from) -> list[str]:
    """The categories a view trains on: its partner, or `train_from` (a name or a list of names)."""
    if train_from is None:
        return [PARTNERS[category]]
    names = [train_from] if isinstance(train_from, str) else train_from
    field = "dataset.params.train_from"
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"give a BFCL category or a list of them ({', '.join(CATEGORIES)}), not {train_from!r}",
                        field=field)
    for name in names:
        if name not in CATEGORIES:
            raise UserError(f"unknown BFCL category {name!r} (known: {', '.join(CATEGORIES)})", field=field)
        if name == category:
            raise UserError(f"{name} is the category this view tests on; its items cannot be training data too",
                            field=field)
    if len(set(names)) != len(names):
        raise UserError(f"a category is named twice: {names}", field=field)
    return names


def _split_fold(rows: list[dict], fold: tuple[int, int]) -> tuple[list[dict], list[dict]]:
    """The category's items in the fold's test part, and the rest (seeded, the same for every i of one k)."""
    i, k = fold
    part = fold_parts([r["id"] for r in rows], k, FOLD_SEED)
    return [r for n, r in enumerate(rows) if part[n] == i - 1], [r for n, r in enumerate(rows) if part[n] != i - 1]


def _view(category: str, train_from=None, fold=None) -> TaskData:
    sources = train_sources(category, train_from)
    fold_ik = parse_fold(fold, "dataset.params.fold")
    rows, files = load_category(category)
    others = []
    if fold_ik:  # cross-fitting: the category's other parts train too, never the part under test
        rows, others = _split_fold(rows, fold_ik)
    for source in sources:
        more, more_files = load_category(source)
        others, files = others + more, files + more_files
    asked = {r["question"] for r in rows}
    duplicates = sum(r["question"] in asked for r in others)
    others = [r for r in others if r["question"] not in asked]
    order = list(range(len(others)))
    random.Random(DEV_SEED).shuffle(order)
    dev_ids = set(order[:min(DEV_SIZE, len(others) // 5)])
    columns = ("id", "question", "functions", "accepted", "gold_calls", "result_type")

    def table(items):
        return hf.Dataset.from_dict({c: [r[c] for r in items] for c in columns})

    splits = hf.DatasetDict({"train": table([r for i, r in enumerate(others) if i not in dev_ids]),
                             "validation": table([r for i, r in enumerate(others) if i in dev_ids]),
                             "test": table(rows)})
    trained = "" if train_from is None else "-train-" + "+".join(sources)  # the partner's views keep their print
    trained += f"-fold-{fold_ik[0]}-of-{fold_ik[1]}-seed-{FOLD_SEED}" if fold_ik else ""
    fingerprint = fingerprint_files(*files, extra=f"{DEV_SEED}-no-test-duplicates{trained}")
    return TaskData(name=f"bfcl_{category}", splits=splits, input_fields=("question", "functions"),
                    label_field="accepted", labels=[], fingerprint=fingerprint,
                    output_field="call", table_fields=("result_type",) if category.startswith("exec") else (),
                    stats={"left_out_of_train": {"same request as a test item": duplicates}})


@dataset("bfcl_simple_python")
def bfcl_simple_python(*, train_from: str | list[str] | None = None, fold: str | None = None) -> TaskData:
    """400 single-function calls (test); train/dev from `multiple`
    (`train_from`: other categories instead; `fold`: cross-fitting, see the module)."""
    return _view("simple_python", train_from, fold)


@dataset("bfcl_multiple")
def bfcl_multiple(*, train_from: str | list[str] | None = None, fold: str | None = None) -> TaskData:
    """200 calls choosing among 2-4 functions (test); train/dev from `simple_python`
    (`train_from`: other categories instead; `fold`: cross-fitting, see the module)."""
    return _view("multiple", train_from, fold)


@dataset("bfcl_exec_simple")
def bfcl_exec_simple(*, train_from: str | list[str] | None = None, fold: str | None = None) -> TaskData:
    """100 calls of one given function, scored by running them; train/dev from `exec_multiple`
    (`train_from`: other categories instead; `fold`: cross-fitting, see the module)."""
    return _view("exec_simple", train_from, fold)


@dataset("bfcl_exec_multiple")
def bfcl_exec_multiple(*, train_from: str | list[str] | None = None, fold: str | None = None) -> TaskData:
    """50 calls choosing among 2-4 functions, scored by running them; train/dev from `exec_simple`
    (`train_from`: other categories instead; `fold`: cross-fitting, see the module)."""
    return _view("exec_multiple", train_from, fold)
