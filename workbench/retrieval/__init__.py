"""Retrievers over a passage corpus behind one contract (see `base.py`), registered by name:
`bm25` (sparse), `dense` (sentence embeddings) and `hybrid` (reciprocal-rank fusion)."""

from workbench.retrieval.base import Hit, Retriever, corpus_fingerprint

__all__ = ["Hit", "Retriever", "corpus_fingerprint"]
