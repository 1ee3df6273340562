"""Dataset loaders: each registered loader returns a `TaskData` of Hugging Face splits.

Vendored files live in the project's top-level `datasets/` folder (no Python there, so it
never shadows the `datasets` library); the loaders live here and find files by path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UserError
from workbench.paths import datasets_dir

if TYPE_CHECKING:  # imported where used: checking a spec must not import DSPy or `datasets`
    import datasets as hf
    import dspy

SPLITS = ("train", "validation", "test")


@dataclass
class TaskData:
    """A dataset view ready for a task: splits, which columns are inputs, the label set."""

    name: str
    splits: hf.DatasetDict
    input_fields: tuple[str, ...]
    label_field: str
    labels: list[str] = field(default_factory=list)
    fingerprint: str = ""
    corpus: list[dict] | None = None  # retrieval tasks: passages {id, title, text}
    output_field: str | None = None  # the prediction field scored against label_field (default: same name)
    table_fields: tuple[str, ...] = ()  # more example fields for the per-example table (e.g. gold_passage)
    stats: dict = field(default_factory=dict)  # what loading did: rows dropped, splits carved, files read

    def examples(self, split: str) -> list[dspy.Example]:
        """Rows of a split as dspy.Examples; `id` stays on the example but is not an input."""
        import dspy

        rows = self.splits[split].to_list()  # one Arrow conversion, not one query per row
        return [dspy.Example(**row).with_inputs(*self.input_fields) for row in rows]


def data_file(folder: str, name: str, *, field: str = "dataset.name") -> Path:
    path = datasets_dir() / folder / name
    if not path.is_file():
        raise UserError("dataset file is missing (re-clone, or restore it from ../shared/data)", file=str(path), field=field)
    return path


def read_text(path: Path, field: str) -> str:
    """A UTF-8 file's text; anything else is one error line naming the file and `field`."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text (byte {exc.start})", file=str(path), field=field) from None


def jsonl_records(path: Path, field: str = "text") -> list[tuple[int, Any]]:
    """(line number, parsed JSON) of each non-blank line; a bad line is one error naming it."""
    records = []
    for number, line in enumerate(read_text(path, field).splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"line {number} is not JSON: {exc.msg}", file=str(path), field=f"line {number}") from None
    return records


def column(rows: hf.Dataset, name: str) -> list[Any]:
    """A column as a list in one Arrow conversion (iterating `rows[name]` queries row by row)."""
    return rows.select_columns([name]).to_dict()[name]


def fingerprint_files(*paths: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def sample(data: TaskData, *, train: int | None, dev: int | None, test: int | None, seed: int,
           source: str = "<spec>") -> TaskData:
    """Seeded subsets of each split; asking for more items than a split has is an error."""
    import datasets as hf

    wanted = {"train": train, "validation": dev, "test": test}
    names = {"train": "dataset.train", "validation": "dataset.dev", "test": "dataset.test"}
    out = {}
    for split, size in wanted.items():
        rows = data.splits[split]
        if len(rows) == 0:
            raise UserError(f"split {split!r} of {data.name} is empty", file=source, field=names[split])
        if size is not None and size > len(rows):
            raise UserError(f"asks for {size} items but {data.name} {split} has {len(rows)}",
                            file=source, field=names[split])
        if size is not None and size < len(rows):
            rows = rows.shuffle(seed=seed).select(range(size))
        out[split] = rows
    return dataclasses.replace(data, splits=hf.DatasetDict(out))
