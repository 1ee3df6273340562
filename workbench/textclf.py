"""Cheap text models: TF-IDF nearest neighbours and a TF-IDF logistic-regression ranker.

They choose demos and candidate labels for small LMs, and they are the classical
baselines printed beside every LM result. Both are deterministic functions of their
training texts, so a saved program stores texts and labels (plain JSON) and rebuilds them,
and a process fits each only once per training set (`neighbours_for`, `ranker_for`): the
baseline and the program's candidate ranker share one fit, and a sweep worker's trials
on the same data refit nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)


class NearestNeighbours:
    """Cosine similarity over TF-IDF vectors of the training texts."""

    def __init__(self, texts: list[str]):
        if not texts:
            raise ValueError("NearestNeighbours needs at least one text")
        self.vectorizer = _vectorizer()
        self.matrix = self.vectorizer.fit_transform(texts)

    def scores(self, queries: list[str]) -> np.ndarray:
        return (self.vectorizer.transform(queries) @ self.matrix.T).toarray()

    def nearest(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[int]:
        """Indices of the k most similar texts, most similar first; `allowed` masks candidates."""
        sims = self.scores([query])[0]
        if allowed is not None:
            sims = np.where(allowed, sims, -np.inf)
        k = min(k, int(np.isfinite(sims).sum()))
        top = np.argpartition(-sims, k - 1)[:k] if k else np.array([], dtype=int)
        return [int(i) for i in top[np.lexsort((top, -sims[top]))]]


class LabelRanker:
    """TF-IDF + logistic regression; ranks labels for a text (top-n candidates)."""

    def __init__(self, texts: list[str], labels: list[str], C: float = 10.0):
        self.vectorizer = _vectorizer()
        features = self.vectorizer.fit_transform(texts)
        self.model = LogisticRegression(C=C, max_iter=2000)
        self.model.fit(features, labels)
        self.classes = [str(c) for c in self.model.classes_]

    def probabilities(self, queries: list[str]) -> np.ndarray:
        return self.model.predict_proba(self.vectorizer.transform(queries))

    def top(self, query: str, n: int) -> list[str]:
        return [label for label, _ in self.top_scored(query, n)]

    def top_scored(self, query: str, n: int) -> list[tuple[str, float]]:
        """The n most probable labels with their probabilities, most probable first."""
        probs = self.probabilities([query])[0]
        order = np.argsort(-probs, kind="stable")[:n]
        return [(self.classes[i], float(probs[i])) for i in order]

    def predict(self, queries: list[str]) -> list[str]:
        probs = self.probabilities(queries)
        return [self.classes[i] for i in probs.argmax(axis=1)]


_FITTED: OrderedDict[str, object] = OrderedDict()
_FITTED_LOCK = threading.Lock()
_FITTED_MAX = 8


def _fitted(kind: str, parts: tuple, build):
    """The fitted model for these exact inputs, fitted once per process (LRU of 8)."""
    digest = hashlib.sha256(kind.encode())
    for part in parts:
        digest.update(b"\x1e")
        for item in part if isinstance(part, list) else [part]:
            digest.update(str(item).encode())
            digest.update(b"\x1f")
    key = digest.hexdigest()
    with _FITTED_LOCK:  # one fit per key, even when threads ask at once
        if key in _FITTED:
            _FITTED.move_to_end(key)
            return _FITTED[key]
        model = build()
        _FITTED[key] = model
        while len(_FITTED) > _FITTED_MAX:
            _FITTED.popitem(last=False)
        return model


def neighbours_for(texts: list[str]) -> NearestNeighbours:
    return _fitted("nn", (texts,), lambda: NearestNeighbours(texts))


def ranker_for(texts: list[str], labels: list[str], C: float = 10.0) -> LabelRanker:
    return _fitted("ranker", (texts, labels, C), lambda: LabelRanker(texts, labels, C))


def one_nn_predict(train_texts: list[str], train_labels: list[str], queries: list[str]) -> list[str]:
    index = neighbours_for(train_texts)
    best = index.scores(queries).argmax(axis=1)
    return [train_labels[i] for i in best]


def majority_label(labels: list[str]) -> str:
    return Counter(labels).most_common(1)[0][0]
