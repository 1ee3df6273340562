"""`dataset.name: file`: a user's CSV, JSON(L), Parquet or Arrow files as a task, no Python.

Files are read by Hugging Face `datasets` builders into memory-mapped Arrow tables (never
parsed by hand, never turned into Python lists): rows with an empty input or label are
dropped by Arrow compute, splits are index selections, and only the columns a task needs
are kept, renamed to the names its programs and metrics read:

- routing: `text` (one column, or several joined as "column: value" lines) and `label`;
- rag: `question`, `answers` (a list, or one string) and `gold_passage`, with the corpus;
- tools: `question`, `functions` (JSON schemas: a column, or registered `tools`) and
  `accepted` (the expected calls, BFCL's possible-answer format or plain {name, arguments}).

See `file_params.py` for the parameters; `data_checks.py` reports what a practitioner
wants to know about the result before spending LM calls.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
from pathlib import Path
from typing import Any

import datasets as hf
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.data import TaskData
from workbench.data.file_params import FORMATS, SPLIT_NAMES, FileParams, check_file_params, files_by_split
from workbench.data.file_tasks import build_rag, build_tools
from workbench.errors import UserError
from workbench.paths import cache_dir
from workbench.registry import dataset

_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "json", ".ndjson": "json",
               ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow"}
_CHUNK = 1 << 22


def expand(patterns: list[str], field: str) -> list[Path]:
    """Files named by paths, globs and folders (a folder: the data files inside it)."""
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        for name in matched:
            path = Path(name)
            if path.is_dir() and not is_saved_dataset(path):
                inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in _EXTENSIONS and p.is_file())
                if not inside:
                    raise UserError(f"the folder holds no data file ({', '.join(sorted(_EXTENSIONS))})", file=name,
                                    field=field)
                files.extend(inside)
            else:
                files.append(path)
    return files


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in ("dataset_dict.json", "state.json"))


def detect_format(files: list[Path], given: str | None, field: str) -> str:
    if given:
        return given
    formats = {"disk" if is_saved_dataset(p) else _EXTENSIONS.get(p.suffix.lower(), "") for p in files}
    if "" in formats:
        odd = next(p for p in files if not is_saved_dataset(p) and p.suffix.lower() not in _EXTENSIONS)
        raise UserError(f"unknown format {odd.suffix or '(no extension)'!r} (known: {', '.join(FORMATS)} — "
                        f"{', '.join(sorted(_EXTENSIONS))}, or a save_to_disk folder); set dataset.params.format",
                        file=str(odd), field=field)
    if len(formats) > 1:
        raise UserError(f"files of several formats ({', '.join(sorted(formats))}); use one", file=str(files[0]),
                        field=field)
    return formats.pop()


def scan(files: list[Path], fmt: str, options: dict[str, Any], params: dict[str, Any], field: str) -> str:
    """One read of every file: an empty file or bytes that are not UTF-8 text (for text formats
    whose `encoding` is UTF-8) are one clear line instead of a builder traceback; returns the
    fingerprint of the files' bytes and the params."""
    text = fmt in ("csv", "tsv", "json") and codecs.lookup(str(options.get("encoding", "utf-8"))).name == "utf-8"
    digest = hashlib.sha256(repr(sorted((k, repr(v)) for k, v in params.items() if k != "path")).encode())
    for path in files:
        if path.is_file() and path.stat().st_size == 0:
            raise UserError("the file is empty", file=str(path), field=field)
        decoder = codecs.getincrementaldecoder("utf-8")() if text else None
        for item in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
            digest.update(item.name.encode())
            offset = 0
            with item.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    try:
                        decoder and decoder.decode(chunk)
                    except UnicodeDecodeError as exc:
                        raise UserError(f"not UTF-8 text (byte {offset + exc.start}); if it is another encoding, say "
                                        "so in dataset.params.options.encoding (e.g. latin-1)", file=str(path),
                                        field=field) from None
                    offset += len(chunk)
    return digest.hexdigest()[:16]


def read(files_of: dict[str, list[Path]], fmt: str, options: dict[str, Any], field: str) -> hf.DatasetDict:
    """The files as a DatasetDict, one split per key, through the builder for `fmt` (after `scan`)."""
    if fmt == "disk":
        loaded = {}
        for split, files in files_of.items():
            try:
                saved = hf.load_from_disk(str(files[0]))
            except Exception as exc:  # noqa: BLE001  any reader error is the file's
                raise UserError(f"not a readable save_to_disk folder: {_first_line(exc)}", file=str(files[0]),
                                field=field) from None
            if isinstance(saved, hf.DatasetDict):
                loaded.update({SPLIT_NAMES.get(k, k): v for k, v in saved.items()})
            else:
                loaded[split] = saved
        return hf.DatasetDict(loaded)
    builder, kwargs = ("csv", {"sep": "\t", **options}) if fmt == "tsv" else (fmt, dict(options))
    hf.disable_progress_bars()
    try:
        return hf.load_dataset(builder, data_files={s: [str(p) for p in f] for s, f in files_of.items()},
                               cache_dir=str(cache_dir() / "hf-datasets"), **kwargs)
    except TypeError as exc:  # an option the builder does not take
        raise UserError(f"the {builder} reader does not take these options: {_first_line(exc)}",
                        file=str(next(iter(files_of.values()))[0]), field="dataset.params.options") from None
    except Exception as exc:  # noqa: BLE001  pyarrow/pandas parse errors arrive wrapped in DatasetGenerationError
        cause = exc.__cause__ or exc.__context__ or exc
        first = str(next(iter(files_of.values()))[0])
        if "corresponds to no data" in str(exc):  # a header and no rows
            raise UserError("the data has no rows", file=first, field=field) from None
        raise UserError(f"cannot read it as {fmt}: {_first_line(cause)}", file=first, field=field) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:240]}" if text else type(exc).__name__


def require_columns(table: hf.Dataset, columns: list[tuple[str, str]], file: str) -> None:
    for column, field in columns:
        if column not in table.column_names:
            raise UserError(f"column {column!r} is not in the data (columns: {', '.join(table.column_names)})",
                            file=file, field=field)


def blank(column: pa.ChunkedArray) -> np.ndarray:
    """True where a value is missing or, for text, only white space."""
    missing = pc.is_null(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):  # a mask, not a trimmed copy
        missing = pc.or_(missing, pc.fill_null(pc.match_substring_regex(column, r"^\s*$"), True))
    return np.asarray(missing.to_numpy(zero_copy_only=False), dtype=bool)


def arrow_column(split: hf.Dataset, name: str) -> pa.ChunkedArray:
    """A column of a split with its row selection applied (Arrow `take`, no Python objects)."""
    column = split.data.table.column(name)
    if split._indices is not None:  # noqa: SLF001  a selection over the memory-mapped table
        column = column.take(split._indices.column(0))  # noqa: SLF001
    return column


def label_codes(column: pa.ChunkedArray) -> np.ndarray:
    """Integer codes of a column's values (Arrow dictionary encoding; no Python strings)."""
    encoded = pc.dictionary_encode(pc.cast(column, pa.string())).combine_chunks()
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def stratified(codes: np.ndarray, counts: np.ndarray, carve: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, carved): `carve` rows drawn at random within each label, in proportion to its
    count (largest remainders get the rounding), at least one per label; numpy only."""
    share = counts * carve / counts.sum()
    quota = np.maximum(np.floor(share).astype(np.int64), 1)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    for i in order[:max(carve - int(quota.sum()), 0)]:
        quota[i] += 1
    while quota.sum() > carve:  # the at-least-one floor overshot: take back from the largest quotas
        quota[np.argmax(quota - (counts == quota))] -= 1
    shuffled = np.random.default_rng(seed).permutation(len(codes))
    grouped = shuffled[np.argsort(codes[shuffled], kind="stable")]  # by label, random within each
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    chosen = np.zeros(len(codes), dtype=bool)
    chosen[np.concatenate([grouped[a:a + q] for a, q in zip(starts, quota)])] = True
    return np.flatnonzero(~chosen), np.flatnonzero(chosen)


def split_ratio(rows: hf.Dataset, fraction: float, seed: int, stratify: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(kept, carved) row indices: `fraction` of the rows carved off, stratified by the label
    column when every label has two rows and the carved part can hold every label."""
    n = len(rows)
    carve = max(1, round(n * fraction))
    if carve >= n:
        raise UserError(f"{n} rows are too few to carve {fraction:g} of them off and keep a train split",
                        field="dataset.params.split")
    how = "random"
    if stratify is not None:
        codes = label_codes(arrow_column(rows, stratify))
        counts = np.bincount(codes)
        if counts.min() >= 2 and len(counts) <= carve <= n - len(counts):
            return (*stratified(codes, counts, carve, seed), "stratified")
        how = "random (a label has fewer than 2 rows, or more labels than rows to carve)"
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[carve:]), np.sort(order[:carve]), how


def with_ids(table: hf.Dataset, id_column: str | None, prefix: str) -> hf.Dataset:
    """An `id` column: the given column as text, else the row's number in its file set."""
    if id_column:
        ids = pc.cast(table.data.table.column(id_column), pa.string())
        table = table.remove_columns([id_column])
    else:
        if "id" in table.column_names:
            table = table.remove_columns(["id"])
        numbers = pa.array(np.arange(1, len(table) + 1))
        ids = pc.binary_join_element_wise(pa.scalar(f"{prefix}-"), pc.cast(numbers, pa.string()), "")
    return table.add_column("id", ids)


def joined_text(table: hf.Dataset, columns: list[str]) -> pa.ChunkedArray:
    """Several input columns as one text: a "column: value" line each."""
    parts = [pc.binary_join_element_wise(pa.scalar(f"{c}: "), pc.fill_null(pc.cast(table.data.table.column(c),
                                                                                   pa.string()), ""), "")
             for c in columns]
    return pc.binary_join_element_wise(*parts, "\n")


def splits_of(loaded: hf.DatasetDict, params: FileParams, file: str, stratify: str | None,
              notes: dict[str, Any]) -> dict[str, hf.Dataset]:
    """train/validation/test: the files' own, a split column's, or carved from train."""
    splits = dict(loaded)
    if params.split_column:
        if set(splits) != {"train"}:
            raise UserError("split_column needs one set of files (path is a mapping of splits)", file=file,
                            field="dataset.params.split_column")
        rows = splits.pop("train")
        values = arrow_column(rows, params.split_column).to_numpy(zero_copy_only=False).astype(str)
        unknown = sorted(set(np.unique(values)) - set(SPLIT_NAMES), key=str)
        if unknown:
            raise UserError(f"values {unknown[:5]} are not train/validation/dev/test", file=file,
                            field="dataset.params.split_column")
        mapped = np.vectorize(SPLIT_NAMES.get, otypes=[object])(values) if len(values) else values
        for name in ("train", "validation", "test"):
            chosen = np.flatnonzero(mapped == name)
            if len(chosen):
                splits[name] = rows.select(chosen)
        if "train" not in splits:
            raise UserError("no row is marked train", file=file, field="dataset.params.split_column")
    carved = {}
    total = len(splits["train"])
    missing = [s for s in ("test", "validation") if s not in splits]
    for name in missing:
        fraction = params.split.get(name)
        if fraction is None:
            raise UserError(f"the data has no {name} split; give its fraction in dataset.params.split or a file for it",
                            file=file, field="dataset.params.split")
        share = fraction * total / len(splits["train"])
        kept, cut, how = split_ratio(splits["train"], share, params.seed + len(carved), stratify)
        train = splits["train"]
        splits["train"], splits[name] = train.select(kept), train.select(cut)
        carved[name] = f"{fraction:g} of train, {how}"
    notes["carved"] = carved
    return splits


def drop_blank(split: hf.Dataset, columns: list[str]) -> tuple[hf.Dataset, int]:
    mask = np.zeros(len(split), dtype=bool)
    for column in columns:
        mask |= blank(split.data.table.column(column))
    if not mask.any():
        return split, 0
    return split.select(np.flatnonzero(~mask)), int(mask.sum())


def label_set(splits: dict[str, hf.Dataset], label: str) -> list[str]:
    """The distinct labels over all splits (Arrow `unique`, no Python rows)."""
    labels: set[str] = set()
    for split in splits.values():
        labels.update(v for v in pc.unique(pc.cast(arrow_column(split, label), pa.string())).to_pylist() if v is not None)
    return sorted(labels)


def with_input(split: hf.Dataset, inputs: list[str], target: str, label: str, file: str) -> hf.Dataset:
    """The input column, or several joined, as one column named `target` (what the programs read)."""
    if inputs == [target]:
        return split
    if label == target:
        raise UserError(f"the label column is named {target!r}, the name the input takes; rename it in the file or "
                        "choose it as the input", file=file, field="dataset.params.label")
    text = joined_text(split, inputs) if len(inputs) > 1 else split.data.table.column(inputs[0])
    drop = [c for c in dict.fromkeys([*inputs, target]) if c in split.column_names and c != label]
    return split.remove_columns(drop).add_column(target, text)


def load_file_dataset(params: dict[str, Any], *, name: str = "file", file: str = "<spec>") -> TaskData:
    """A TaskData from checked params (see `file_params.check`)."""
    parsed = FileParams.model_validate(params)
    patterns = files_by_split(parsed.path)
    files_of = {s: expand(p, "dataset.params.path") for s, p in patterns.items()}
    all_files = [p for files in files_of.values() for p in files]
    fmt = detect_format(all_files, parsed.format, "dataset.params.path")
    where = str(all_files[0])
    fingerprint = scan(all_files, fmt, parsed.options, params, "dataset.params.path")
    loaded = read(files_of, fmt, parsed.options, "dataset.params.path")
    if not loaded or all(len(split) == 0 for split in loaded.values()):
        raise UserError("the data has no rows", file=where, field="dataset.params.path")
    task = parsed.task or "routing"
    inputs, label = parsed.inputs(), parsed.label_column()
    needed = [(c, "dataset.params.input") for c in inputs] + [(label, "dataset.params.label")]
    needed += [(c, f"dataset.params.{f}") for c, f in ((parsed.id, "id"), (parsed.split_column, "split_column"),
                                                      (parsed.functions, "functions")) if c]
    if task == "rag":
        needed.append((parsed.gold_passage, "dataset.params.gold_passage"))
    notes: dict[str, Any] = {"format": fmt, "files": [str(p) for p in all_files], "dropped": {}}
    input_name = "text" if task == "routing" else "question"
    prepared = {}
    for split_name, split in loaded.items():
        source = str(files_of.get(split_name, all_files)[0])
        require_columns(split, needed, source)
        split = with_ids(split, parsed.id, "row" if len(loaded) == 1 else split_name)
        prepared[split_name] = with_input(split, inputs, input_name, label, source)
    dropped = {}
    for split_name in list(prepared):
        prepared[split_name], dropped[split_name] = drop_blank(prepared[split_name], [input_name, label])
    notes["dropped"] = {k: v for k, v in dropped.items() if v}
    if all(len(split) == 0 for split in prepared.values()):
        raise UserError(f"every row has an empty {input_name!r} or {label!r}", file=where, field="dataset.params.label")
    splits = splits_of(hf.DatasetDict(prepared), parsed, where, label if task == "routing" else None, notes)
    if task == "routing":
        labels = label_set(splits, label)
        if len(labels) < 2:
            raise UserError(f"the label column has {len(labels)} class{'es' if len(labels) != 1 else ''} "
                            f"({labels[:1]}); routing needs at least 2", file=where, field="dataset.params.label")
        keep = ["id", "text", label]
        splits = {k: s.select_columns(keep) for k, s in splits.items()}
        if label != "label":
            splits = {k: s.rename_column(label, "label") for k, s in splits.items()}
        splits = {k: s if s.features["label"].dtype in ("string", "large_string") else
                  s.cast_column("label", hf.Value("string")) for k, s in splits.items()}
        return TaskData(name=name, splits=hf.DatasetDict(splits), input_fields=("text",), label_field="label",
                        labels=labels, fingerprint=fingerprint, stats=notes)
    if task == "rag":
        return build_rag(name, splits, parsed, fingerprint, notes, where)
    return build_tools(name, splits, parsed, fingerprint, notes, where)


@dataset("file")
def file(**params: Any) -> TaskData:
    """Your CSV / JSON(L) / Parquet / Arrow files (dataset.params: path, input, label, split...)."""
    return load_file_dataset(params)


file.check_params = check_file_params
file.needs_params = True
