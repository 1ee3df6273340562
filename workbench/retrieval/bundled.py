"""Retrieval indexes inside an exported bundle: copied at export, loaded (never built) at load.

A bundle keeps each distinct index once, under `indexes/<name>-<fingerprint>/`, and a map
from the program's roles (`retriever`, `reranker.bm25`, ...) to those folders; the corpus
travels as `corpus.jsonl`. Loading needs neither the dataset nor `.cache/indexes`.
"""

from __future__ import annotations

import json
from pathlib import Path

from workbench.errors import UserError
from workbench.retrieval.base import Retriever

CORPUS = "corpus.jsonl"


def write_corpus(folder: Path, passages: list[dict], max_bytes: int | None = None) -> int:
    """Write the passages as JSONL; refuse (before writing) a corpus over `max_bytes`."""
    lines = [json.dumps({k: p[k] for k in ("id", "title", "text") if k in p}, ensure_ascii=False) for p in passages]
    size = sum(len(line.encode()) + 1 for line in lines)
    if max_bytes is not None and size > max_bytes:
        raise UserError(f"the corpus is {size / 1e6:.1f} MB, over the bundle limit of {max_bytes / 1e6:.1f} MB "
                        "(raise it with --max-corpus-mb)", field="--max-corpus-mb")
    (folder / CORPUS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return size


def read_corpus(folder: Path) -> list[dict]:
    from workbench.export.bundle import BundleError

    path = folder / CORPUS
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise BundleError("file is missing from the bundle", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"not valid JSONL: {exc}", file=str(path)) from None


def export_indexes(folder: Path, roles: dict[str, Retriever]) -> dict[str, str]:
    """Copy each role's index into folder/indexes (each distinct index once); the role map."""
    mapping = {}
    for role, retriever in roles.items():
        name = f"{retriever.name}-{retriever.fingerprint}"
        target = folder / "indexes" / name
        if not target.exists():
            retriever.copy_index(target)
        mapping[role] = f"indexes/{name}"
    return mapping


def load_indexes(folder: Path, roles: dict[str, Retriever], mapping: dict[str, str]) -> None:
    """Load each role's retriever from the bundle folder the map names."""
    from workbench.export.bundle import BundleError

    for role, retriever in roles.items():
        if role not in mapping:
            raise BundleError(f"program_config.json names no index for {role!r}", file=str(folder / "program_config.json"))
        where = (folder / mapping[role]).resolve()
        if folder.resolve() not in where.parents or not where.is_dir():
            raise BundleError(f"index folder for {role!r} is missing", file=str(folder / mapping[role]))
        try:
            retriever.load_from(where)
        except (OSError, ValueError, KeyError) as exc:
            raise BundleError(f"index for {role!r} cannot be loaded: {type(exc).__name__}: {exc}",
                              file=str(where)) from None
