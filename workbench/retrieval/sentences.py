"""Sentences of passages: splitting, content words, and the sentence most like a question.

Shared by the learned reranker (best-sentence features) and the span-choice answerer
(candidates come from the best sentence). Sentence vectors are cached per passage.
"""

from __future__ import annotations

import re

import numpy as np

STOPWORDS = frozenset("""a an the of in on at to for by with from and or nor is was were are be been being as
that this these those which who whom whose what when where why how did do does doing its it it's his her hers
their theirs he she they them there into than then also had has have having not but after before during while
about over under between against per via so such any each other some most more many much one can could would
should may might will shall""".split())
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”']?\s+(?=[A-Z0-9\"“(])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def content_words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text) if w.lower() not in STOPWORDS}


class SentencePicker:
    """The sentence of some passages most like a question: cosine of sentence embeddings
    plus 0.1 per shared content word."""

    def __init__(self, embed, embed_query=None):
        self.embed = embed  # list[str] -> unit-norm vectors
        self.embed_query = embed_query or (lambda text: embed([text])[0])
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}

    def __deepcopy__(self, memo):  # programs are deep-copied by optimizers; the cache is shared
        return self

    def split(self, pid: str, text: str) -> tuple[list[str], np.ndarray]:
        """The passage's sentences and their vectors (computed once per passage id)."""
        if pid not in self._cache:
            parts = sentences(text) or [text]
            self._cache[pid] = (parts, self.embed(parts))
        return self._cache[pid]

    def best(self, question: str, passages: list[tuple[str, str]]) -> tuple[str, str]:
        """(passage id, sentence) of the best sentence among `passages` [(id, text)]."""
        query = self.embed_query(question)
        asked = content_words(question)
        best, best_score = (passages[0][0], passages[0][1]), -1e9
        for pid, text in passages:
            parts, vectors = self.split(pid, text)
            for sentence, vector in zip(parts, vectors):
                score = float(vector @ query) + 0.1 * len(asked & content_words(sentence))
                if score > best_score:
                    best, best_score = (pid, sentence), score
        return best
