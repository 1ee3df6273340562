"""The rag and tools shapes of a file dataset (routing is in `files.py`).

Both keep their rows small (questions, not millions of tickets), so values are read into
Python here to be checked one by one: every bad row is one error naming its id.
"""

from __future__ import annotations

import json
from typing import Any

import datasets as hf

from workbench.data import TaskData
from workbench.data.file_params import FileParams
from workbench.errors import UserError

TOOL_COLUMNS = ("id", "question", "functions", "accepted", "gold_calls", "result_type")


def _loads(value: Any, what: str, row: str, file: str, field: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise UserError(f"row {row}: {what} is not JSON ({exc.msg})", file=file, field=field) from None
    return value


def _drop_nulls(value: Any) -> Any:
    """Arrow gives every struct all keys seen in the column; the ones a row lacks are None."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def accepted_form(value: Any) -> list[dict] | None:
    """Expected calls as BFCL's possible answers `[{name: {argument: [accepted values]}}]`.

    Takes that form, one such dict, or plain calls `{"name", "arguments"}` (one, or a list of
    alternatives); None when the value is none of these."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, dict) or not item:
            return None
        if isinstance(item.get("name"), str) and isinstance(item.get("arguments", {}), dict) \
                and set(item) <= {"name", "arguments"}:
            out.append({item["name"]: {k: [v] for k, v in item.get("arguments", {}).items()}})
        elif len(item) == 1 and isinstance(next(iter(item.values())), dict):
            [(name, arguments)] = item.items()
            out.append({name: {k: v if isinstance(v, list) else [v] for k, v in arguments.items()}})
        else:
            return None
    return out or None


def tool_schemas(names: list[str]) -> list[dict]:
    from workbench.registry import tools
    from workbench.tools.schema import SchemaError

    schemas = []
    for i, name in enumerate(names):
        try:
            schemas.append(tools.get(name, field=f"dataset.params.tools.{i}").schema())
        except SchemaError as exc:
            raise UserError(str(exc), field=f"dataset.params.tools.{i}") from None
    return schemas


def build_tools(name: str, splits: dict[str, hf.Dataset], params: FileParams, fingerprint: str,
                notes: dict[str, Any], file: str) -> TaskData:
    label = params.label_column()
    offered = json.dumps(tool_schemas(params.tools)) if params.tools else None
    out = {}
    for split_name, split in splits.items():
        rows = {c: [] for c in TOOL_COLUMNS}
        columns = [c for c in ("id", "question", label, params.functions) if c]
        for record in split.select_columns(list(dict.fromkeys(columns))).to_list():
            row = record["id"]
            if offered is not None:
                functions = offered
            else:
                value = _drop_nulls(_loads(record[params.functions], "functions", row, file, "dataset.params.functions"))
                if not isinstance(value, list) or not all(isinstance(f, dict) and "name" in f for f in value):
                    raise UserError(f"row {row}: functions must be a list of JSON schemas with a name", file=file,
                                    field="dataset.params.functions")
                functions = json.dumps(value)
            accepted = accepted_form(_drop_nulls(_loads(record[label], "expected calls", row, file,
                                                        "dataset.params.label")))
            if accepted is None:
                raise UserError(f"row {row}: expected calls must be {{\"name\", \"arguments\"}} or BFCL's "
                                "[{function: {argument: [accepted values]}}]", file=file, field="dataset.params.label")
            names = {f["name"] for f in json.loads(functions)}
            for call in accepted:
                called = next(iter(call))
                if called not in names:
                    raise UserError(f"row {row}: expects a call to {called!r}, which is not offered "
                                    f"({', '.join(sorted(names))})", file=file, field="dataset.params.label")
            for column, value in zip(TOOL_COLUMNS, (row, record["question"], functions, json.dumps(accepted), "[]", "")):
                rows[column].append(value)
        out[split_name] = hf.Dataset.from_dict(rows)
    return TaskData(name=name, splits=hf.DatasetDict(out), input_fields=("question", "functions"),
                    label_field="accepted", fingerprint=fingerprint, output_field="call", stats=notes)


def build_rag(name: str, splits: dict[str, hf.Dataset], params: FileParams, fingerprint: str,
              notes: dict[str, Any], file: str) -> TaskData:
    from workbench.data.corpus import load_corpus
    from workbench.data.qa_corpus import _features, _gold_chunk

    passages_list = load_corpus(params.corpus, chunk_words_max=params.chunk_words, overlap=params.overlap)
    passages = {p["id"]: p for p in passages_list}
    chunks_of: dict[str, list[str]] = {}
    for p in passages_list:
        chunks_of.setdefault(p["document"], []).append(p["id"])
    label = params.label_column()
    out = {}
    for split_name, split in splits.items():
        rows = {c: [] for c in ("id", "question", "answers", "gold_passage")}
        for record in split.select_columns(["id", "question", label, params.gold_passage]).to_list():
            row = record["id"]
            answers = _loads(record[label], "answers", row, file, "dataset.params.label") \
                if isinstance(record[label], str) and record[label].lstrip().startswith("[") else record[label]
            answers = [answers] if isinstance(answers, str) else answers
            if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
                raise UserError(f"row {row}: answers must be a string or a list of strings", file=file,
                                field="dataset.params.label")
            gold = _gold_chunk(str(record[params.gold_passage] or ""), answers, passages, chunks_of)
            if not gold:
                raise UserError(f"row {row}: gold passage {record[params.gold_passage]!r} is not a document or passage "
                                "of the corpus", file=file, field="dataset.params.gold_passage")
            for column, value in zip(rows, (row, record["question"], answers, gold)):
                rows[column].append(value)
        out[split_name] = hf.Dataset.from_dict(rows, features=_features())
    return TaskData(name=name, splits=hf.DatasetDict(out), input_fields=("question",), label_field="answers",
                    fingerprint=fingerprint, corpus=passages_list, output_field="answer",
                    table_fields=("gold_passage",), stats=notes)
