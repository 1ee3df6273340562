"""Cheap answer-candidate selection for extractive QA, so a small LM only has to choose.

A 135M LM asked to copy a short answer span out of two passages scores token F1 ≈ 0.1.
The same LM does far better choosing among a handful of spans. This module finds them
without any LM: the sentence of the retrieved passages most like the question (sentence
embeddings + shared words), then the phrases of that sentence that are not question
words, ranked by distance to the question's words in the sentence, length, and whether
they fit the question's type (a number for "how many", a date for "when", a name for
"who"). `rank_spans(...)[0]` alone is the extractive baseline printed beside the LM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.retrieval.sentences import STOPWORDS, content_words

_WORD = re.compile(r"\w+(?:[.,'’%-]\w+)*%?|\$\w+(?:[.,]\w+)*", re.UNICODE)
_SEGMENT = re.compile(r"[^,;:()\[\]\"“”–—]+")
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_DATE = re.compile(rf"\b(1\d{{3}}|20\d\d|\d+(st|nd|rd|th)|{_MONTHS}|centur(y|ies)|decades?|bc|ad)\b", re.I)
_DIGIT = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion)\b",
                    re.I)
MAX_SPAN_WORDS = 6


def question_type(question: str) -> str:
    """number | date | person | place | other, from the question's wh-phrase."""
    q = question.lower()
    if re.search(r"\bhow (many|much|long|far|old|large|big|tall|high)\b|\bwhat (percentage|percent|number|amount)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\b(what|which) (year|date|century|decade|month|day|time|period)\b", q):
        return "date"
    if re.search(r"\bwho\b|\bwhom\b|\bwhose\b", q):
        return "person"
    if re.search(r"\bwhere\b|\b(what|which) (city|country|state|place|region|town|location)\b", q):
        return "place"
    return "other"


@dataclass(frozen=True)
class Span:
    text: str
    score: float


def _type_bonus(text: str, kind: str) -> float:
    has_digit = bool(_DIGIT.search(text))
    capital = text[:1].isupper()
    if kind == "number":
        return 2.0 * has_digit
    if kind == "date":
        return 2.0 * bool(_DATE.search(text))
    if kind in ("person", "place"):
        return 1.5 * capital - 1.0 * has_digit
    return 0.3 * capital


def rank_spans(question: str, sentence: str, limit: int = 8) -> list[Span]:
    """Phrases of `sentence` (≤ 6 words, no question words, not starting or ending on a
    stopword), best first."""
    asked = content_words(question)
    words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(sentence)]
    is_asked = [w.lower() in asked for w, _, _ in words]
    asked_at = [i for i, flag in enumerate(is_asked) if flag]
    kind = question_type(question)
    found: dict[str, float] = {}
    for segment in _SEGMENT.finditer(sentence):
        inside = [i for i, (_, start, end) in enumerate(words) if start >= segment.start() and end <= segment.end()]
        run: list[int] = []
        for i in inside + [-1]:
            if i >= 0 and not is_asked[i]:
                run.append(i)
                continue
            for a in range(len(run)):
                for b in range(a, min(a + MAX_SPAN_WORDS, len(run))):
                    first, last = run[a], run[b]
                    if words[first][0].lower() in STOPWORDS or words[last][0].lower() in STOPWORDS:
                        continue
                    text = sentence[words[first][1]:words[last][2]]
                    distance = min((min(abs(j - first), abs(j - last)) for j in asked_at), default=20)
                    score = -0.3 * distance - 0.15 * (b - a + 1) + _type_bonus(text, kind)
                    found[text] = max(score, found.get(text, -1e9))
            run = []
    ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))
    return [Span(text, score) for text, score in ranked[:limit]]
