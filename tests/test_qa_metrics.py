"""QA and retrieval metrics against hand-computed values."""

from __future__ import annotations

import dspy
import pytest

from metrics.qa import (answer_f1, answer_f1_feedback, citation_precision, exact_match, grounded, normalize_answer,
                        recall_at_k, reciprocal_rank, token_f1)
from workbench.retrieval.hybrid import rrf
from workbench.retrieval.base import Hit


def test_squad_normalization():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a day") == "apple day"
    assert normalize_answer("Theory") == "theory"  # 'the' only as a word


def test_exact_match_and_f1():
    assert exact_match("the Denver Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert exact_match("Broncos of Denver", ["Denver Broncos"]) == 0.0
    # pred {denver, broncos, team} vs gold {denver, broncos}: P 2/3, R 1, F1 0.8
    assert token_f1("Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)
    assert token_f1("Denver Broncos team", ["Carolina", "Denver Broncos"]) == pytest.approx(0.8)  # best answer
    assert token_f1("", ["x"]) == 0.0


def test_recall_and_mrr():
    ranked = ["a", "b", "c"]
    assert recall_at_k(ranked, "b", 1) == 0.0 and recall_at_k(ranked, "b", 2) == 1.0
    assert reciprocal_rank(ranked, "c") == pytest.approx(1 / 3) and reciprocal_rank(ranked, "z") == 0.0


def test_citations_and_groundedness():
    passages = {"p1": "Super Bowl 50 was won by the Denver Broncos.", "p2": "Carolina lost."}
    assert citation_precision(["p1", "p2"], passages, ["Denver Broncos"]) == 0.5
    assert citation_precision([], passages, ["Denver Broncos"]) == 0.0
    assert grounded("Denver Broncos", ["p1"], passages) == 1.0
    assert grounded("Denver Broncos", ["p2"], passages) == 0.0
    assert grounded("", ["p1"], passages) == 0.0


def test_metric_functions_and_feedback():
    example = dspy.Example(question="q", answers=["Denver Broncos"], gold_passage="p1").with_inputs("question")
    right = dspy.Prediction(answer="Denver Broncos", retrieved=["p1"], citations=["p1"])
    missed = dspy.Prediction(answer="Carolina", retrieved=["p2"], citations=["p2"])
    assert answer_f1(example, right) == 1.0 and answer_f1(example, None) == 0.0
    feedback = answer_f1_feedback(example, missed)
    assert feedback.score == 0.0 and "not retrieved" in feedback.feedback


def test_reciprocal_rank_fusion():
    bm25 = [Hit("a", 9), Hit("b", 5), Hit("c", 1)]
    dense = [Hit("b", 0.9), Hit("c", 0.8), Hit("a", 0.1)]
    fused = [h.id for h in rrf([bm25, dense], [1.0, 1.0], rrf_k=60)]
    assert fused[0] == "b"  # ranks 2 and 1 beat ranks 1 and 3
    assert [h.id for h in rrf([bm25, dense], [1.0, 0.0])] == ["a", "b", "c"]  # weight 0 = bm25 alone
