"""Sentences of passages: splitting, content words, and the sentence most like a question.

Shared by the learned reranker (best-sentence features) and the span-choice answerer
(candidates come from the best sentence). `corpus_picker` gives both one picker per corpus
and process. It embeds the first passages a query needs one by one (a single request stays
cheap); once a quarter of the corpus was needed, it embeds the rest in one pass and keeps
the whole corpus's vectors on disk (`.cache/sentences/`, keyed by corpus and embedding
model), so later runs, sweep trials and servers on the machine read them instead.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np

STOPWORDS = frozenset("""a an the of in on at to for by with from and or nor is was were are be been being as
that this these those which who whom whose what when where why how did do does doing its it it's his her hers
their theirs he she they them there into than then also had has have having not but after before during while
about over under between against per via so such any each other some most more many much one can could would
should may might will shall""".split())
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”']?\s+(?=[A-Z0-9\"“(])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def content_words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text) if w.lower() not in STOPWORDS}


class SentencePicker:
    """The sentence of some passages most like a question: cosine of sentence embeddings
    plus 0.1 per shared content word."""

    def __init__(self, embed, embed_query=None, *, corpus: dict[str, str] | None = None,
                 store: Path | None = None, batch_after: int | None = None):
        self.embed = embed  # list[str] -> unit-norm vectors
        self.embed_query = embed_query or (lambda text: embed([text])[0])
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}
        self._corpus, self._store = corpus or {}, store  # {id: text}, and where its vectors are kept
        # A few passages (one query's) are embedded one by one; once `batch_after` corpus passages
        # were needed, the rest go in one batched pass and the whole corpus is saved to `store`.
        self._batch_after = batch_after or max(1, len(self._corpus) // 4)
        self._complete, self._store_read, self._one_by_one = not self._corpus, False, 0
        self._lock = threading.Lock()

    def __deepcopy__(self, memo):  # programs are deep-copied by optimizers; the cache is shared
        return self

    def split(self, pid: str, text: str) -> tuple[list[str], np.ndarray]:
        """The passage's sentences and their vectors (computed once per passage id)."""
        if pid not in self._cache and not self._complete and self._corpus.get(pid) == text:
            self._from_corpus(pid)
        if pid not in self._cache:
            parts = sentences(text) or [text]
            self._cache[pid] = (parts, self.embed(parts))
        return self._cache[pid]

    def _from_corpus(self, pid: str) -> None:
        with self._lock:
            if not self._store_read:
                self._store_read = True
                if self._fill(self._read(self._parts())):
                    return
            if self._complete or pid in self._cache:
                return
            self._one_by_one += 1
            if self._one_by_one < self._batch_after:
                return  # split() embeds this one passage
            rest = [i for i in self._corpus if i not in self._cache]
            parts = [sentences(self._corpus[i]) or [self._corpus[i]] for i in rest]
            vectors = self.embed([s for p in parts for s in p])
            self._fill(vectors, rest, parts)
            self._write()

    def _parts(self) -> list[list[str]]:
        return [sentences(text) or [text] for text in self._corpus.values()]

    def _fill(self, vectors: np.ndarray | None, ids: list[str] | None = None,
              parts: list[list[str]] | None = None) -> bool:
        if vectors is None:
            return False
        ids, parts = ids or list(self._corpus), parts or self._parts()
        start = 0
        for pid, p in zip(ids, parts):
            self._cache[pid] = (p, vectors[start:start + len(p)])
            start += len(p)
        self._complete = True
        return True

    def _write(self) -> None:
        if self._store is None:
            return
        vectors = np.concatenate([self._cache[i][1] for i in self._corpus]).astype(np.float32)
        counts = np.asarray([len(self._cache[i][0]) for i in self._corpus])
        self._store.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._store.with_name(f"{self._store.stem}.tmp-{time.time_ns()}.npz")  # never half-written
        np.savez(tmp, vectors=vectors, counts=counts)
        tmp.replace(self._store)

    def _read(self, parts: list[list[str]]) -> np.ndarray | None:
        if self._store is None or not self._store.is_file():
            return None
        try:
            with np.load(self._store, allow_pickle=False) as saved:
                vectors, counts = saved["vectors"], saved["counts"]
        except (OSError, ValueError, KeyError):  # unreadable: recompute and overwrite
            return None
        fits = counts.tolist() == [len(p) for p in parts] and len(vectors) == sum(counts.tolist())
        return vectors if fits else None

    def best(self, question: str, passages: list[tuple[str, str]]) -> tuple[str, str]:
        """(passage id, sentence) of the best sentence among `passages` [(id, text)]."""
        query = self.embed_query(question)
        asked = content_words(question)
        best, best_score = (passages[0][0], passages[0][1]), -1e9
        for pid, text in passages:
            parts, vectors = self.split(pid, text)
            for sentence, vector in zip(parts, vectors):
                score = float(vector @ query) + 0.1 * len(asked & content_words(sentence))
                if score > best_score:
                    best, best_score = (pid, sentence), score
        return best


_pickers: dict[str, SentencePicker] = {}
_pickers_lock = threading.Lock()


def corpus_picker(passages: list[dict], model: str = "all-minilm-l6-v2") -> SentencePicker:
    """The process's one picker for this corpus and embedding model, its vectors kept under
    `.cache/sentences/<model>-<corpus fingerprint>.npz`."""
    from workbench.paths import cache_dir
    from workbench.retrieval.base import corpus_fingerprint
    from workbench.retrieval.dense import embed, embed_query, model_digest

    key = f"{model}-{model_digest(model)}-{corpus_fingerprint(passages)}"
    with _pickers_lock:
        if key not in _pickers:
            _pickers[key] = SentencePicker(lambda texts: embed(texts, model), lambda text: embed_query(text, model),
                                           corpus={p["id"]: p["text"] for p in passages},
                                           store=cache_dir() / "sentences" / f"{key}.npz")
        return _pickers[key]
