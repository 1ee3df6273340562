"""Query vectors: embedded in batches ahead of the calls that need them (a reranker's training
questions), the same vectors one at a time would give, and kept per process up to a bound."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.retrieval import dense as D


@pytest.fixture
def counted(monkeypatch):
    calls: list[list[str]] = []

    def embed(texts, name="all-minilm-l6-v2", batch_size=32):
        calls.append(list(texts))
        return np.asarray([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)

    monkeypatch.setattr(D, "embed", embed)
    monkeypatch.setattr(D, "_queries", D.OrderedDict())
    return calls


def test_queries_embedded_ahead_in_one_batch_are_not_embedded_again(counted):
    questions = ["where is bern?", "who won?", "where is bern?", "how many?"]
    D.embed_queries(questions)
    assert counted == [["where is bern?", "who won?", "how many?"]]  # once each, one call
    vectors = [D.embed_query(q) for q in questions]
    assert len(counted) == 1 and not vectors[0].flags.writeable
    D.embed_queries(questions)  # all cached: no call
    D.embed_query("new one")
    assert counted[1:] == [["new one"]]


def test_the_query_cache_is_bounded_and_drops_the_least_recently_used(counted, monkeypatch):
    monkeypatch.setattr(D, "QUERY_CACHE", 3)
    D.embed_queries(["a", "b", "c"])
    D.embed_query("a")  # used again: kept
    D.embed_query("d")
    assert list(k for k, _ in D._queries) == ["c", "a", "d"]


def test_batched_vectors_equal_one_at_a_time_on_the_real_model():
    questions = ["What is the name of the stadium where Super Bowl 50 was played?", "Who won?",
                 "In which year did the university open its first library for students?"]
    one = [D.embed([q])[0] for q in questions]
    batched = D.embed(questions)
    assert np.allclose(np.vstack(one), batched, atol=1e-5)
