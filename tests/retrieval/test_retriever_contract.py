"""The contract every registered retriever meets, on the real XQuAD corpus (240 passages)."""

from __future__ import annotations

import pytest

from metrics.qa import recall_at_k
from workbench.registry import datasets, retrievers


@pytest.fixture(scope="module")
def xquad():
    return datasets.get("xquad_en")()


@pytest.fixture(scope="module", params=sorted(retrievers.names()))
def built(request, xquad):
    return request.param, retrievers.get(request.param)(xquad.corpus).ready()


def test_hits_are_ranked_unique_corpus_ids(built, xquad):
    _, retriever = built
    hits = retriever.search("Which NFL team represented the AFC at Super Bowl 50?", 10)
    ids = [h.id for h in hits]
    assert len(ids) == 10 == len(set(ids)) and set(ids) <= {p["id"] for p in xquad.corpus}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits == retriever.search("Which NFL team represented the AFC at Super Bowl 50?", 10)  # deterministic


def test_k_is_clamped_and_validated(built, xquad):
    _, retriever = built
    assert len(retriever.search("anything", 10_000)) == len(xquad.corpus)
    with pytest.raises(ValueError):
        retriever.search("anything", 0)


def test_query_of_only_stopwords_does_not_fail(built):
    _, retriever = built
    assert len(retriever.search("the of and", 3)) == 3


def test_index_is_cached_and_reloads_to_the_same_results(built, xquad):
    name, retriever = built
    again = retrievers.get(name)(xquad.corpus).ready()
    assert again.loaded_from_cache and again.fingerprint == retriever.fingerprint
    question = xquad.splits["test"][0]["question"]
    assert [h.id for h in again.search(question, 5)] == [h.id for h in retriever.search(question, 5)]


def test_fingerprint_changes_with_the_corpus(built, xquad):
    name, retriever = built
    other = retrievers.get(name)(xquad.corpus[:-1])
    assert other.fingerprint != retriever.fingerprint


def test_recall_at_5_on_test_questions(built, xquad):
    """A floor well under what each measures (bm25 0.99, dense 0.98 on all questions)."""
    _, retriever = built
    test = xquad.splits["test"]
    recall = sum(recall_at_k([h.id for h in retriever.search(q["question"], 5)], q["gold_passage"], 5)
                 for q in test) / len(test)
    assert recall >= 0.9
