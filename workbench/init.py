"""`workbench init DATA_FILE --task routing|rag|tools`: a runnable spec for a user's file.

Reads the file through the same Hugging Face builder a run uses, profiles its columns
(type, distinct values, blanks, text length), proposes the input and label columns (or
takes `--input`/`--label`), sniffs a CSV's delimiter, and writes `experiments/<name>.yaml`
with the task's program, `retrieval_demos` and sample sizes that fit the data. The spec is
validated and its data loaded before anything is written; an existing file is never
replaced.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import UserError

LABEL_HINTS = re.compile(r"label|category|class|intent|queue|topic|target|tag|type|team|department|route", re.I)
INPUT_HINTS = re.compile(r"text|message|question|query|request|utterance|body|content|description|prompt|ticket", re.I)
CALL_HINTS = re.compile(r"expected_calls|calls?$|expected|tool_call|answer", re.I)
MAX_LABELS = 500

PROGRAMS = {
    "routing": ({"name": "router", "params": {"candidates": 2}}, {"name": "accuracy", "summaries": ["macro_f1",
                                                                                                   "confusion_matrix"]},
                {"name": "retrieval_demos", "params": {"k": 5}}, 32),
    "tools": ({"name": "function_caller"}, {"name": "ast_match", "summaries": ["error_types"]},
              {"name": "retrieval_demos", "params": {"k": 3}}, 256),
    "rag": ({"name": "rag", "params": {"retriever": "bm25", "k": 5, "n": 1}},
            {"name": "answer_f1", "summaries": ["retrieval", "answer_quality"]},
            {"name": "retrieval_demos", "params": {"k": 3}}, 64),
}


@dataclass
class Column:
    name: str
    type: str
    distinct: int
    blank: int
    mean_length: float  # text columns; 0 otherwise

    @property
    def text(self) -> bool:
        return self.type in ("string", "large_string")


def sniff_options(path: Path) -> dict[str, Any]:
    """A CSV's delimiter when it is not a comma (semicolon, tab, pipe)."""
    if path.suffix.lower() not in (".csv", ".txt"):
        return {}
    sample = path.read_bytes()[:65536].decode("utf-8", errors="ignore")
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return {}
    return {} if delimiter == "," else {"sep": delimiter}


def profile(table) -> list[Column]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from workbench.data.files import blank

    columns = []
    arrow = table.data.table
    for name in table.column_names:
        column = arrow.column(name)
        kind = str(column.type)
        is_text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        hashable = is_text or pa.types.is_integer(column.type) or pa.types.is_boolean(column.type)
        distinct = len(pc.unique(column)) if hashable else -1
        length = float(pc.mean(pc.utf8_length(column)).as_py() or 0) if is_text else 0.0
        columns.append(Column(name, "string" if is_text else kind, distinct, int(blank(column).sum()), length))
    return columns


def propose_routing(columns: list[Column], rows: int, file: str) -> tuple[str, str]:
    limit = min(MAX_LABELS, max(2, rows // 2))
    labels = [c for c in columns if c.distinct >= 2 and c.distinct <= limit and (c.text or "int" in c.type)
              and c.name.lower() != "id"]
    if not labels:
        described = ", ".join(f"{c.name} ({c.distinct if c.distinct >= 0 else '?'} distinct)" for c in columns)
        raise UserError(f"no plausible label column (one with 2 to {limit} distinct values): {described}; "
                        "name one with --label", file=file, field="--label")
    label = max(labels, key=lambda c: (bool(LABEL_HINTS.search(c.name)), c.text, -c.distinct))
    return propose_input(columns, {label.name}, file), label.name


def propose_input(columns: list[Column], exclude: set[str], file: str) -> str:
    texts = [c for c in columns if c.text and c.name not in exclude and c.name.lower() != "id"]
    if not texts:
        raise UserError("no text column to use as the input; name one with --input", file=file, field="--input")
    return max(texts, key=lambda c: (bool(INPUT_HINTS.search(c.name)), c.mean_length)).name


def _pick(columns: list[Column], hints: re.Pattern, exclude: set[str], what: str, flag: str, file: str) -> str:
    named = [c.name for c in columns if hints.search(c.name) and c.name not in exclude]
    if not named:
        raise UserError(f"no {what} column ({', '.join(c.name for c in columns)}); name one with {flag}", file=file,
                        field=flag)
    return named[0]


def dataset_params(args, data_file: Path, spec_dir: Path) -> tuple[dict[str, Any], str]:
    """The `dataset.params` for the file, and a one-line description of what was chosen."""
    from workbench.data.files import detect_format, read, scan

    file = str(data_file)
    if not data_file.exists():
        raise UserError("data file not found", file=file, field="DATA_FILE")
    options = sniff_options(data_file)
    fmt = detect_format([data_file], None, "DATA_FILE")
    scan([data_file], fmt, options, {}, "DATA_FILE")  # empty or not UTF-8: one line, before the builder
    loaded = read({"train": [data_file]}, fmt, options, "DATA_FILE")
    table = next(iter(loaded.values()))
    if len(table) == 0:
        raise UserError("the data has no rows", file=file, field="DATA_FILE")
    columns = profile(table)
    names = [c.name for c in columns]
    for flag, value in (("--input", args.input), ("--label", args.label)):
        if value and value not in names:
            raise UserError(f"column {value!r} is not in the data (columns: {', '.join(names)})", file=file, field=flag)
    params: dict[str, Any] = {"path": os.path.relpath(data_file.resolve(), spec_dir.resolve())}
    if options:
        params["options"] = options
    if args.task == "routing":
        guessed_input, guessed_label = (None, None) if args.label and args.input else propose_routing(columns, len(table),
                                                                                                       file)
        label = args.label or guessed_label
        chosen_input = args.input or (guessed_input if guessed_input != label else propose_input(columns, {label}, file))
        distinct = next(c.distinct for c in columns if c.name == label)
        if distinct < 2:
            raise UserError(f"column {label!r} has {distinct} distinct value; routing needs 2 or more", file=file,
                            field="--label")
        params.update(task="routing", input=chosen_input, label=label)
        said = f"input {chosen_input!r}, label {label!r} ({distinct} labels)"
    else:
        chosen_input = args.input or _pick(columns, INPUT_HINTS, set(), "question", "--input", file)
        hints = CALL_HINTS if args.task == "tools" else re.compile(r"answers?$", re.I)
        label = args.label or _pick(columns, hints, {chosen_input}, "expected-calls" if args.task == "tools" else
                                    "answers", "--label", file)
        params.update(task=args.task, input=chosen_input, label=label)
        said = f"input {chosen_input!r}, label {label!r}"
        if args.task == "rag":
            if not args.corpus:
                raise UserError("task rag needs --corpus (a folder of .txt/.md, or a JSONL of {id, title, text})",
                                field="--corpus")
            params["corpus"] = os.path.relpath(Path(args.corpus).resolve(), spec_dir.resolve())
        elif "functions" in names:
            params["functions"] = "functions"
        elif args.tools:
            params["tools"] = [t.strip() for t in args.tools.split(",") if t.strip()]
        else:
            raise UserError("task tools needs --tools NAME,NAME (registered tools, with --imports for your module) or a "
                            "`functions` column", field="--tools")
    return params, f"{len(table)} rows, {fmt}; {said}"


def write_spec(args) -> tuple[Path, str]:
    from workbench.spec import validate

    data_file = Path(args.data_file)
    name = args.name or re.sub(r"\W+", "_", data_file.stem).strip("_").lower() or "my_task"
    out = Path(args.out) if args.out else Path("experiments") / f"{name}.yaml"
    if out.exists():
        raise UserError("exists; choose another --name or --out (init never overwrites)", file=str(out), field="--out")
    params, said = dataset_params(args, data_file, out.parent)
    program, metric, optimizer, max_tokens = PROGRAMS[args.task]
    imports = [os.path.relpath(Path(i).resolve(), out.parent.resolve()) if i.endswith(".py") else i
               for i in (args.imports or [])]
    spec: dict[str, Any] = {"name": name, "description": f"{args.task} on {data_file.name} (written by workbench init)",
                            "task": args.task, **({"imports": imports} if imports else {}),
                            "dataset": {"name": "file", "params": params, "train": None, "dev": 50, "test": 200,
                                        "seed": 0},
                            "program": program, "metric": metric,
                            "lm": {"backend": "embedded", "model": "smollm2-135m-instruct", "temperature": 0.0,
                                   "max_tokens": max_tokens},
                            "optimizer": optimizer, "eval": {"split": "test", "threads": 1},
                            "tracking": {"experiment": name}}
    checked = validate(yaml.safe_load(yaml.safe_dump(spec)), str(out))
    from workbench import registry
    from workbench.data.loading import load_dataset

    data = load_dataset(registry.datasets.get("file"), checked.dataset.params, str(out))
    sizes = {s: len(data.splits[s]) for s in ("validation", "test")}
    spec["dataset"]["dev"] = min(50, sizes["validation"])
    spec["dataset"]["test"] = min(200, sizes["test"])
    header = (f"# Written by `workbench init {data_file}` ({said}).\n"
              "# Paths are relative to this file. Edit freely; `workbench run` validates it.\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "x", encoding="utf-8") as handle:
        handle.write(header + yaml.safe_dump(spec, sort_keys=False, width=110))
    return out, said


def init_spec(data_file: str | Path, task: str, *, name: str | None = None, out: str | Path | None = None,
              input: str | None = None, label: str | None = None, corpus: str | None = None,
              tools: list[str] | None = None, imports: list[str] | None = None) -> Path:
    """The Python form of `workbench init`: writes the spec and returns its path."""
    import argparse

    if task not in PROGRAMS:
        raise UserError(f"unknown task {task!r} (known: {', '.join(PROGRAMS)})", field="--task")
    args = argparse.Namespace(data_file=str(data_file), task=task, name=name, out=str(out) if out else None,
                              input=input, label=label, corpus=corpus, tools=",".join(tools) if tools else None,
                              imports=imports)
    return write_spec(args)[0]


def init_command(args) -> int:
    out, said = write_spec(args)
    name = yaml.safe_load(out.read_text(encoding="utf-8"))["name"]
    print(f"wrote {out} ({said})")
    print("next:")
    print(f"  workbench run {out}                 # compile + evaluate, tracked in MLflow")
    print(f"  workbench run {out} --set optimizer.name=none --set 'optimizer.params={{}}'   # a zero-shot run to compare")
    print(f"  workbench compare {name}                 # leaderboard, paired tests, changed examples")
    print(f"  workbench export {name} --out build/{name}   # a verified bundle of the best run")
    return 0
