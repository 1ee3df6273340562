"""A learned reranker: logistic regression over cheap relevance features, fitted on the
training questions' gold passages (seconds, no LM calls).

No cross-encoder ships on PyPI with its weights, and the embedded 135M LM reranks worse
than fusion does, so the reranker learns how much to trust each signal instead: the
fused rank, BM25 and dense ranks and scores, the best sentence's embedding similarity and
word overlap with the question, and whether every question word occurs in the passage.
Its coefficients are plain numbers in the program's DSPy state (no pickle); a reloaded
program reranks identically.
"""

from __future__ import annotations

import threading

import numpy as np
from dspy.predict.parameter import Parameter

from workbench.retrieval.sentences import content_words, corpus_picker
from workbench.retrieval.bm25 import BM25Retriever
from workbench.retrieval.dense import DenseRetriever, embed_queries, embed_query

FEATURES = ("inverse_rank", "bm25_inverse_rank", "dense_inverse_rank", "bm25_relative_score", "dense_cosine",
            "best_sentence_cosine", "best_sentence_overlap", "all_words_in_passage")
SIGNAL_DEPTH = 50  # BM25 / dense ranks beyond this count as "not found"
EMBED_AHEAD = 1024  # training questions embedded per batch call when fitting (a quarter of dense.QUERY_CACHE)


class LearnedReranker(Parameter):
    """rerank(question, ranked ids) -> ids reordered by P(gold | features)."""

    def __init__(self, passages: list[dict], C: float = 1.0):
        self.C = C
        self.coef: list[float] = []
        self.intercept = 0.0
        self._passages = passages
        self._texts = {p["id"]: p["text"] for p in passages}
        self._parts: tuple[BM25Retriever, DenseRetriever] | None = None
        self._sentences = corpus_picker(passages)
        self._lock = threading.Lock()

    # DSPy state: plain numbers only.
    def dump_state(self, json_mode: bool = True) -> dict:
        return {"features": list(FEATURES), "coef": list(self.coef), "intercept": self.intercept, "C": self.C}

    def load_state(self, state: dict) -> LearnedReranker:
        if state.get("features") not in (None, list(FEATURES)):
            raise ValueError(f"reranker state has features {state['features']}, this version computes {FEATURES}")
        self.coef, self.intercept, self.C = [float(c) for c in state["coef"]], float(state["intercept"]), state["C"]
        return self

    def reset(self) -> None:
        """Kept across DSPy's reset_copy(): the weights are fitted on data, not bootstrapped."""

    def __deepcopy__(self, memo):
        twin = LearnedReranker(self._passages, self.C)
        twin.coef, twin.intercept, twin._parts, twin._sentences = list(self.coef), self.intercept, self._parts, \
            self._sentences
        return twin

    @property
    def fitted(self) -> bool:
        return len(self.coef) == len(FEATURES)

    def signal_retrievers(self) -> tuple[BM25Retriever, DenseRetriever]:
        """The BM25 and dense retrievers whose ranks and scores are features (not yet loaded)."""
        with self._lock:
            if self._parts is None:
                self._parts = (BM25Retriever(self._passages), DenseRetriever(self._passages))
            return self._parts

    def _signals(self) -> tuple[BM25Retriever, DenseRetriever]:
        return self.signal_retrievers()  # each loads (or builds) its index on first search

    def features(self, question: str, ranked: list[str]) -> np.ndarray:
        bm25, dense = self._signals()
        by_bm25 = {h.id: (r, h.score) for r, h in enumerate(bm25.search(question, SIGNAL_DEPTH), 1)}
        by_dense = {h.id: (r, h.score) for r, h in enumerate(dense.search(question, SIGNAL_DEPTH), 1)}
        top_bm25 = max((s for _, s in by_bm25.values()), default=0.0) or 1.0
        asked = content_words(question)
        query = embed_query(question)
        rows = []
        for rank, pid in enumerate(ranked, 1):
            b_rank, b_score = by_bm25.get(pid, (SIGNAL_DEPTH + 1, 0.0))
            d_rank, d_score = by_dense.get(pid, (SIGNAL_DEPTH + 1, 0.0))
            parts, vectors = self._sentences.split(pid, self._texts[pid])
            overlap = max(len(asked & content_words(s)) for s in parts) / max(len(asked), 1)
            rows.append([1 / rank, 1 / b_rank, 1 / d_rank, b_score / top_bm25, d_score, float(np.max(vectors @ query)),
                         overlap, float(asked <= content_words(self._texts[pid]))])
        return np.asarray(rows, dtype=np.float64)

    def fit(self, questions: list[str], gold: list[str], rank) -> LearnedReranker:
        """Fit on training questions; `rank(question)` gives the first-stage ids to rerank."""
        from sklearn.linear_model import LogisticRegression

        questions, blocks, labels = list(questions), [], []
        for i, (question, gold_id) in enumerate(zip(questions, gold)):
            if i % EMBED_AHEAD == 0:  # the next questions in batches, not one at a time; fewer than the cache holds
                embed_queries(questions[i:i + EMBED_AHEAD])
            ranked = rank(question)
            blocks.append(self.features(question, ranked))
            labels.extend(pid == gold_id for pid in ranked)
        if not any(labels) or all(labels):
            raise ValueError("the reranker needs training questions whose gold passage is retrieved, and others not")
        model = LogisticRegression(C=self.C, max_iter=2000).fit(np.vstack(blocks), np.asarray(labels))
        self.coef, self.intercept = [float(c) for c in model.coef_[0]], float(model.intercept_[0])
        return self

    def rerank(self, question: str, ranked: list[str]) -> list[str]:
        if not self.fitted or len(ranked) < 2:
            return list(ranked)
        scores = self.features(question, ranked) @ np.asarray(self.coef) + self.intercept
        return [ranked[i] for i in np.argsort(-scores, kind="stable")]
