"""The `params` of a file dataset (`dataset.name: file`, or a `datasets/<name>/dataset.yaml`).

Only pydantic and the standard library here: a spec's dataset section is checked, and its
relative paths resolved, before any data library is imported.

    dataset:
      name: file
      params:
        path: data/tickets.csv          # a file, a glob, a folder, or {train: ..., validation: ..., test: ...}
        options: {sep: ";"}             # passed to the Hugging Face builder
        input: text                     # a column, or a list of columns (joined as "column: value" lines)
        label: queue                    # routing: the label; rag: the answers; tools: the expected calls
        split_column: null              # a column holding train/validation/test, or ...
        split: {validation: 0.1, test: 0.2}   # ... fractions carved from train (seeded, stratified)
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.errors import UserError

TASKS = ("routing", "rag", "tools")
FORMATS = ("csv", "tsv", "json", "parquet", "arrow", "disk")
# What a split is called (path keys, split_column values) -> the name used here.
SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
DEFAULT_INPUT = {"routing": "text", "rag": "question", "tools": "question"}
DEFAULT_LABEL = {"routing": "label", "rag": "answers", "tools": "expected_calls"}


class FileParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | list[str] | dict[str, str | list[str]]
    format: Literal["csv", "tsv", "json", "parquet", "arrow", "disk"] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    task: Literal["routing", "rag", "tools"] | None = None
    input: str | list[str] | None = None
    label: str | None = None
    id: str | None = None
    split_column: str | None = None
    split: dict[str, float] = Field(default_factory=lambda: {"validation": 0.1, "test": 0.2})
    seed: int = 0
    # rag: the passages the questions are answered from (a folder of .txt/.md, or JSONL {id, title, text})
    corpus: str | None = None
    gold_passage: str = "gold_passage"
    chunk_words: int = Field(default=200, ge=10)
    overlap: int = Field(default=40, ge=0)
    # tools: a column holding each example's offered functions (JSON schemas), or registered tool names
    functions: str | None = None
    tools: list[str] | None = None
    # what a dataset.yaml may say about itself (shown by `workbench list datasets`)
    description: str = ""

    @field_validator("split")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for name, fraction in value.items():
            if name not in ("validation", "dev", "test"):
                raise ValueError(f"split {name!r} cannot be carved from train (use validation/dev or test)")
            if not 0 < fraction < 1:
                raise ValueError(f"the {name} fraction must be between 0 and 1 (exclusive), got {fraction}")
        if sum(value.values()) >= 1:
            raise ValueError(f"the fractions add up to {sum(value.values()):g}; train needs the rest (< 1)")
        return {SPLIT_NAMES[k]: v for k, v in value.items()}

    @field_validator("path")
    @classmethod
    def _split_keys(cls, value):
        if isinstance(value, dict):
            unknown = [k for k in value if k not in SPLIT_NAMES]
            if unknown:
                raise ValueError(f"unknown split {unknown[0]!r} (use train, validation/dev, test)")
            if "train" not in value:
                raise ValueError("a split mapping needs a train entry")
        return value

    @model_validator(mode="after")
    def _per_task(self) -> FileParams:
        if self.task == "rag" and not self.corpus:
            raise ValueError("task 'rag' needs `corpus` (a folder of .txt/.md files or a JSONL of {id, title, text})")
        if self.task != "rag" and self.corpus:
            raise ValueError("`corpus` only applies to task 'rag'")
        if self.task != "tools" and (self.functions or self.tools):
            raise ValueError("`functions`/`tools` only apply to task 'tools'")
        if self.task == "tools" and self.functions and self.tools:
            raise ValueError("give either `functions` (a column) or `tools` (registered names), not both")
        if self.task == "tools" and not (self.functions or self.tools):
            raise ValueError("task 'tools' needs `tools` (registered tool names) or `functions` (a column of JSON schemas)")
        return self

    def inputs(self) -> list[str]:
        value = self.input or DEFAULT_INPUT[self.task or "routing"]
        return [value] if isinstance(value, str) else list(value)

    def label_column(self) -> str:
        return self.label or DEFAULT_LABEL[self.task or "routing"]


def infer_task(params: dict[str, Any], spec_task: str | None) -> str:
    """The file's task: said in params, else implied by corpus/tools/functions, else the spec's."""
    if params.get("task"):
        return params["task"]
    if params.get("corpus"):
        return "rag"
    if params.get("tools") or params.get("functions"):
        return "tools"
    return spec_task if spec_task in TASKS else "routing"


def _absolute(value: str, base: Path) -> str:
    if "://" in value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def resolve_paths(params: dict[str, Any], base: Path) -> dict[str, Any]:
    """`path` and `corpus` made absolute against `base` (the spec's or dataset.yaml's folder)."""
    out = dict(params)
    path = out.get("path")
    if isinstance(path, str):
        out["path"] = _absolute(path, base)
    elif isinstance(path, list):
        out["path"] = [_absolute(p, base) if isinstance(p, str) else p for p in path]
    elif isinstance(path, dict):
        out["path"] = {k: (_absolute(v, base) if isinstance(v, str) else
                           [_absolute(p, base) if isinstance(p, str) else p for p in v] if isinstance(v, list) else v)
                       for k, v in path.items()}
    if isinstance(out.get("corpus"), str):
        out["corpus"] = _absolute(out["corpus"], base)
    return out


def check(params: dict[str, Any], *, base: Path, spec_task: str | None, file: str,
          prefix: str = "dataset.params") -> dict[str, Any]:
    """Validated params with absolute paths and an explicit `task`; one UserError otherwise.

    Paths must exist now (a glob must match), so a typo never reaches a data library."""
    if "path" not in params:
        raise UserError("a file dataset needs `path` (a file, a glob, a folder, or {train: ..., test: ...})",
                        file=file, field=f"{prefix}.path")
    data = resolve_paths({**params, "task": infer_task(params, spec_task)}, base)
    try:
        parsed = FileParams.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-", "union[", "str", "list[",
                                                                                 "dict[")))
        kind = error["type"]
        message = ("unknown key" if kind == "extra_forbidden" else
                   error["msg"].removeprefix("Value error, ") + (f" (got {error.get('input')!r})"
                                                                 if kind.endswith(("_type", "_parsing", "literal_error"))
                                                                 else ""))
        raise UserError(message, file=file, field=f"{prefix}.{field}" if field else prefix) from None
    for split, pattern in _patterns(parsed.path):
        where = f"{prefix}.path" + (f".{split}" if isinstance(parsed.path, dict) else "")
        if not glob.has_magic(pattern) and not Path(pattern).exists():
            raise UserError("data file not found", file=pattern, field=where)
        if glob.has_magic(pattern) and not glob.glob(pattern, recursive=True):
            raise UserError("no file matches this pattern", file=pattern, field=where)
    if parsed.corpus and not Path(parsed.corpus).exists():
        raise UserError("corpus not found", file=parsed.corpus, field=f"{prefix}.corpus")
    return data


def _patterns(path) -> list[tuple[str, str]]:
    if isinstance(path, str):
        return [("train", path)]
    if isinstance(path, list):
        return [("train", p) for p in path]
    return [(SPLIT_NAMES[k], p) for k, v in path.items() for p in ([v] if isinstance(v, str) else v)]


def files_by_split(path) -> dict[str, list[str]]:
    """{split: [pattern, ...]} with dev folded into validation."""
    out: dict[str, list[str]] = {}
    for split, pattern in _patterns(path):
        out.setdefault(split, []).append(pattern)
    return out


def check_file_params(params: dict[str, Any], *, base: Path, spec_task: str | None, file: str) -> dict[str, Any]:
    """Spec-time check (see `check`), plus: named tools must be registered."""
    checked = check(params, base=base, spec_task=spec_task, file=file)
    if checked.get("tools"):
        from workbench.registry import tools

        for i, tool_name in enumerate(checked["tools"]):
            tools.info(tool_name, file=file, field=f"dataset.params.tools.{i}")
    return checked
