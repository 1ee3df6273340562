"""Metrics for retrieval-augmented QA: retrieval (recall@k, MRR) and answers (SQuAD exact
match and token F1, citation precision, groundedness), each usable alone.

Answer normalization follows the official SQuAD v1.1 evaluation: lowercase, drop
punctuation, drop the articles a/an/the, collapse whitespace. A prediction carries
`answer`, `citations` (passage ids it used) and `retrieved` (ranked passage ids);
examples carry `answers` (accepted strings) and `gold_passage`.
"""

from __future__ import annotations

import re
import string
from collections import Counter

import dspy

from workbench.registry import metric

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(predicted: str, answers: list[str]) -> float:
    return float(any(normalize_answer(predicted) == normalize_answer(a) for a in answers))


def _f1(predicted: str, answer: str) -> float:
    pred, gold = normalize_answer(predicted).split(), normalize_answer(answer).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(predicted: str, answers: list[str]) -> float:
    """The best F1 over the accepted answers, as SQuAD scores it."""
    return max((_f1(predicted, a) for a in answers), default=0.0)


def recall_at_k(retrieved: list[str], gold: str, k: int) -> float:
    return float(gold in list(retrieved)[:k])


def reciprocal_rank(retrieved: list[str], gold: str) -> float:
    ranked = list(retrieved)
    return 1.0 / (ranked.index(gold) + 1) if gold in ranked else 0.0


def contains_answer(passage: str, answers: list[str]) -> bool:
    text = normalize_answer(passage)
    return any(norm and norm in text for norm in map(normalize_answer, answers))


def citation_precision(citations: list[str], passages: dict[str, str], answers: list[str]) -> float:
    """Share of cited passages that contain a gold answer (0 when nothing is cited)."""
    cited = [c for c in citations if c in passages]
    if not cited:
        return 0.0
    return sum(contains_answer(passages[c], answers) for c in cited) / len(cited)


def grounded(answer: str, citations: list[str], passages: dict[str, str]) -> float:
    """1.0 when the (normalized) answer occurs in one of the cited passages."""
    norm = normalize_answer(answer)
    return float(bool(norm) and any(norm in normalize_answer(passages.get(c, "")) for c in citations))


def _answer(prediction) -> str:
    return str(getattr(prediction, "answer", "") or "") if prediction is not None else ""


@metric("answer_f1")
def answer_f1(example, prediction, trace=None) -> float:
    """SQuAD token F1 of the answer against the accepted answers."""
    return token_f1(_answer(prediction), list(example.answers))


@metric("answer_em")
def answer_em(example, prediction, trace=None) -> float:
    """SQuAD exact match."""
    return exact_match(_answer(prediction), list(example.answers))


@metric("answer_f1_feedback")
def answer_f1_feedback(example, prediction, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
    """Token F1 plus what went wrong, for reflective optimizers (GEPA)."""
    answer, answers = _answer(prediction), list(example.answers)
    score = token_f1(answer, answers)
    retrieved = list(getattr(prediction, "retrieved", []) or [])
    if score == 1.0:
        feedback = "Correct answer."
    elif example.gold_passage not in retrieved:
        feedback = (f"The passage holding the answer ({example.gold_passage}) was not retrieved; the answer "
                    f"{answer!r} cannot be right. Expected {answers[0]!r}.")
    elif not answer:
        feedback = f"No answer given; the expected answer {answers[0]!r} is in passage {example.gold_passage}."
    else:
        feedback = (f"Answered {answer!r} (F1 {score:.2f}); expected {answers[0]!r}, a short span copied from "
                    f"passage {example.gold_passage}. Answer with the shortest exact span.")
    return dspy.Prediction(score=score, feedback=feedback)
