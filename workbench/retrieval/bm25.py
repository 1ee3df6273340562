"""Sparse retrieval: BM25 (Lucene variant) over title + passage, via `bm25s`."""

from __future__ import annotations

import logging
from pathlib import Path

from workbench.registry import retriever
from workbench.retrieval.base import Hit, Retriever, passage_text

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build at DEBUG


class BM25Retriever(Retriever):
    name = "bm25"

    def __init__(self, passages: list[dict], *, k1: float = 1.5, b: float = 0.75, stopwords: str | None = "en"):
        super().__init__(passages)
        self.k1, self.b, self.stopwords = k1, b, stopwords
        self._model = None

    def settings(self) -> dict:
        import bm25s

        return {"k1": self.k1, "b": self.b, "stopwords": self.stopwords, "bm25s": bm25s.__version__}

    def _tokenize(self, texts: list[str]):
        import bm25s

        return bm25s.tokenize(texts, stopwords=self.stopwords, show_progress=False)

    def _build(self, folder: Path) -> None:
        import bm25s

        model = bm25s.BM25(k1=self.k1, b=self.b)
        model.index(self._tokenize([passage_text(p) for p in self.passages]), show_progress=False)
        model.save(str(folder / "bm25"))

    def _load(self, folder: Path) -> None:
        import bm25s

        self._model = bm25s.BM25.load(str(folder / "bm25"))

    def _search(self, query: str, k: int) -> list[Hit]:
        tokens = self._tokenize([query])
        if not tokens.vocab:  # only stopwords / punctuation: nothing matches
            return [Hit(i, 0.0) for i in self.ids[:k]]
        docs, scores = self._model.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [Hit(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0])]


@retriever("bm25")
def bm25(passages: list[dict], *, k1: float = 1.5, b: float = 0.75) -> BM25Retriever:
    """BM25 over title + text, English stopwords removed."""
    return BM25Retriever(passages, k1=k1, b=b)
