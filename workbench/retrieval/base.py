"""The retriever contract, and the on-disk index cache every retriever shares.

A retriever is built over a corpus of passages `{id, title, text}` and answers
`search(query, k)` with up to k `Hit(id, score)`, best first, deterministic for a given
corpus and settings. Building may be slow, so indexes are saved under
`.cache/indexes/<name>-<fingerprint>/` (fingerprint = corpus + settings + model) and
reloaded; `index_dir` is what a run logs to MLflow as an artifact.
`tests/retrieval/test_retriever_contract.py` is the suite every retriever passes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.paths import cache_dir


@dataclass(frozen=True)
class Hit:
    id: str
    score: float


def corpus_fingerprint(passages: list[dict]) -> str:
    digest = hashlib.sha256()
    for p in passages:
        digest.update(json.dumps([p["id"], p.get("title", ""), p["text"]], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def passage_text(passage: dict) -> str:
    """What retrievers index: the title (often the topic) and the passage."""
    title = passage.get("title") or ""
    return f"{title}\n{passage['text']}" if title else passage["text"]


class Retriever:
    """Subclasses set `name`, implement `settings()`, `_build(dir)`, `_load(dir)`, `_search`."""

    name = "retriever"

    def __init__(self, passages: list[dict]):
        if not passages:
            raise ValueError("a retriever needs at least one passage")
        self.passages = passages
        self.ids = [p["id"] for p in passages]
        self.build_seconds = 0.0
        self.loaded_from_cache = False
        self._ready = False
        self._ready_lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        return {}

    def __deepcopy__(self, memo):  # optimizers deep-copy programs; an index is read-only, share it
        return self

    @property
    def fingerprint(self) -> str:
        key = json.dumps({"corpus": corpus_fingerprint(self.passages), "name": self.name, **self.settings()},
                         sort_keys=True, default=str)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def index_dir(self) -> Path:
        return cache_dir() / "indexes" / f"{self.name}-{self.fingerprint}"

    def ready(self) -> Retriever:
        """Load the cached index, or build and save it (atomically: never half-written)."""
        folder = self.index_dir
        start = time.perf_counter()
        if (folder / "DONE").is_file():
            self._load(folder)
            self.loaded_from_cache = True
        else:
            tmp = folder.with_name(folder.name + f".tmp-{time.time_ns()}")
            tmp.mkdir(parents=True)
            self._build(tmp)
            (tmp / "DONE").write_text(json.dumps(self.settings(), default=str))
            try:
                tmp.rename(folder)
            except OSError:  # another process finished first; use ours anyway
                pass
            self._load(folder if (folder / "DONE").is_file() else tmp)
        self.build_seconds = time.perf_counter() - start
        self._ready = True
        return self

    @property
    def is_ready(self) -> bool:
        return self._ready

    def parts(self) -> list[Retriever]:
        """The retrievers with an index of their own (a fusion retriever: its parts)."""
        return [self]

    def copy_index(self, folder: Path) -> None:
        """Copy the built index into `folder` (a bundle's `indexes/<name>`)."""
        import shutil

        if not self._ready:
            self.ready()
        shutil.copytree(self.index_dir, folder, ignore=shutil.ignore_patterns("DONE"))

    def load_from(self, folder: Path) -> Retriever:
        """Load an index copied by `copy_index` (a bundle's), never building one."""
        self._load(folder)
        self._ready = self.loaded_from_cache = True
        return self

    def search(self, query: str, k: int) -> list[Hit]:
        if k < 1:
            raise ValueError("k must be at least 1")
        if not self._ready:  # first use without an explicit ready(): load or build now
            with self._ready_lock:
                if not self._ready:
                    self.ready()
        return self._search(query, min(k, len(self.ids)))

    def index_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.index_dir.rglob("*") if f.is_file())

    # subclasses
    def _build(self, folder: Path) -> None:
        raise NotImplementedError

    def _load(self, folder: Path) -> None:
        raise NotImplementedError

    def _search(self, query: str, k: int) -> list[Hit]:
        raise NotImplementedError
