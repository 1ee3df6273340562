"""Hybrid retrieval: weighted reciprocal-rank fusion of BM25 and dense rankings.

score(p) = sum over retrievers r of weight_r / (rrf_k + rank_r(p)), ranks from 1, over
each retriever's top `depth`. Rank fusion needs no score calibration between a BM25 score
and a cosine; the weights and rrf_k are spec parameters (and so tunable by a sweep).
"""

from __future__ import annotations

from workbench.registry import retriever
from workbench.retrieval.base import Hit, Retriever
from workbench.retrieval.bm25 import BM25Retriever
from workbench.retrieval.dense import DenseRetriever


def rrf(rankings: list[list[Hit]], weights: list[float], rrf_k: float = 60.0) -> list[Hit]:
    scores: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, hit in enumerate(ranking, 1):
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (rrf_k + rank)
            first_seen.setdefault(hit.id, len(first_seen))
    order = sorted(scores, key=lambda i: (-scores[i], first_seen[i]))
    return [Hit(i, scores[i]) for i in order]


class HybridRetriever(Retriever):
    name = "hybrid"

    def __init__(self, passages: list[dict], *, bm25_weight: float = 1.0, dense_weight: float = 1.0,
                 rrf_k: float = 60.0, depth: int = 50, model: str = "all-minilm-l6-v2"):
        super().__init__(passages)
        if bm25_weight < 0 or dense_weight < 0 or bm25_weight + dense_weight == 0:
            raise ValueError("fusion weights must be >= 0 and not both 0")
        self.weights = (bm25_weight, dense_weight)
        self.rrf_k, self.depth = rrf_k, depth
        self.parts_ = (BM25Retriever(passages), DenseRetriever(passages, model=model))

    def settings(self) -> dict:
        return {"parts": [p.fingerprint for p in self.parts_]}  # fusion settings need no index of their own

    def ready(self) -> HybridRetriever:
        for part in self.parts_:
            part.ready()
        self.build_seconds = sum(p.build_seconds for p in self.parts_)
        self.loaded_from_cache = all(p.loaded_from_cache for p in self.parts_)
        self._ready = True  # else every search would load the parts' indexes again
        return self

    def parts(self) -> list[Retriever]:
        return list(self.parts_)

    @property
    def index_dirs(self):
        return [p.index_dir for p in self.parts_]

    def index_bytes(self) -> int:
        return sum(p.index_bytes() for p in self.parts_)

    def _search(self, query: str, k: int) -> list[Hit]:
        depth = max(self.depth, k)
        rankings = [p.search(query, depth) for p in self.parts_]
        return rrf(rankings, list(self.weights), self.rrf_k)[:k]


@retriever("hybrid")
def hybrid(passages: list[dict], *, bm25_weight: float = 1.0, dense_weight: float = 1.0, rrf_k: float = 60.0,
           depth: int = 50) -> HybridRetriever:
    """BM25 + dense, fused by weighted reciprocal rank."""
    return HybridRetriever(passages, bm25_weight=bm25_weight, dense_weight=dense_weight, rrf_k=rrf_k, depth=depth)
