"""A labelled example pool a program retrieves from at inference time.

Small LMs need demos that look like the query and, for many labels, a short candidate
list. The pool stores its examples as plain JSON in the program's DSPy state and rebuilds
its TF-IDF index and label ranker on first use, so a reloaded program predicts the same.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from dspy.predict.parameter import Parameter

from workbench.textclf import LabelRanker, NearestNeighbours, neighbours_for, ranker_for


class ExamplePool(Parameter):
    """Examples (`{input_field: ..., label_field: ...}` dicts) plus how many demos per query."""

    def __init__(self, input_field: str = "text", label_field: str = "label",
                 examples: list[dict[str, Any]] | None = None, k: int = 0, balanced: bool = False,
                 extra_fields: tuple[str, ...] = ()):
        self.input_field = input_field
        self.label_field = label_field
        self.extra_fields = tuple(extra_fields)  # kept with each example (e.g. a gold passage id)
        self.examples = list(examples or [])
        self.k = k
        self.balanced = balanced
        self._lock = threading.Lock()
        self._index: NearestNeighbours | None = None
        self._ranker: LabelRanker | None = None
        self._labels: np.ndarray | None = None
        # (folds, fold): (ranker fitted on the other folds, the labels they hold)
        self._fold_rankers: dict[tuple[int, int], tuple[LabelRanker | None, set]] = {}
        self._labels_of: dict[str, set] | None = None  # each text's own labels (the out-of-fold fallback)
        self._texts_array: np.ndarray | None = None
        self._leave_self_out = False

    # DSPy state: plain data only.
    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        return {"input_field": self.input_field, "label_field": self.label_field, "k": self.k,
                "balanced": self.balanced, "extra_fields": list(self.extra_fields), "examples": [dict(e) for e in self.examples]}

    def load_state(self, state: dict[str, Any]) -> ExamplePool:
        self.input_field = state["input_field"]
        self.label_field = state["label_field"]
        self.k = int(state["k"])
        self.balanced = bool(state.get("balanced", False))
        self.extra_fields = tuple(state.get("extra_fields", ()))
        self.examples = [dict(e) for e in state["examples"]]
        self.reset_index()
        return self

    def reset(self) -> None:
        """DSPy's reset_copy() clears learned state; a pool keeps its examples (they are data)."""

    def reset_index(self) -> None:
        with self._lock:
            self._index = self._ranker = self._labels = self._texts_array = None
            self._fold_rankers, self._labels_of = {}, None

    def fill(self, examples: list[dict[str, Any]], k: int | None = None, balanced: bool | None = None) -> None:
        keep = (self.input_field, self.label_field, *self.extra_fields)
        self.examples = [{name: e[name] for name in keep} for e in examples]
        if k is not None:
            self.k = k
        if balanced is not None:
            self.balanced = balanced
        self.reset_index()

    def __deepcopy__(self, memo):
        # Optimizers deep-copy programs often; the fitted index is shared, not copied.
        twin = ExamplePool(self.input_field, self.label_field, self.examples, self.k, self.balanced, self.extra_fields)
        twin._index, twin._ranker, twin._labels = self._index, self._ranker, self._labels
        twin._texts_array = self._texts_array
        twin._fold_rankers, twin._labels_of = self._fold_rankers, self._labels_of
        return twin

    def _texts(self) -> list[str]:
        return [str(e[self.input_field]) for e in self.examples]

    def index(self) -> NearestNeighbours:
        with self._lock:
            if self._index is None:
                self._index = neighbours_for(self._texts())
                self._labels = np.empty(len(self.examples), dtype=object)  # 1-D even when labels are lists
                for i, e in enumerate(self.examples):
                    self._labels[i] = e[self.label_field]
                self._texts_array = np.array(self._texts(), dtype=object)
            return self._index

    @contextlib.contextmanager
    def leaving_self_out(self) -> Iterator[None]:
        """While a program's training prompts are recorded (`finetune`), a query never gets itself, or
        another pool example with the same text, as a demo: the pool holds the training examples, so the
        nearest demo would be the query with its gold answer, and a model trained on such prompts learns
        to copy the last demo's answer, which no test query offers."""
        self._leave_self_out = True
        try:
            yield
        finally:
            self._leave_self_out = False

    def _mask(self, text: str, allowed: np.ndarray | None) -> np.ndarray | None:
        if not self._leave_self_out:
            return allowed
        other = self._texts_array != text
        return other if allowed is None else allowed & other

    def ranker(self) -> LabelRanker:
        with self._lock:
            if self._ranker is None:
                self._ranker = ranker_for(self._texts(), [e[self.label_field] for e in self.examples])
            return self._ranker

    def nearest(self, text: str, k: int, labels: list[str] | None = None) -> list[dict[str, Any]]:
        """The k pool examples most like `text` (optionally only those with a label in
        `labels`), least similar first so the closest demo sits next to the query."""
        index = self.index()
        allowed = np.isin(self._labels, labels) if labels is not None else None
        picked = index.nearest(text, k, self._mask(text, allowed))
        return [dict(self.examples[i]) for i in reversed(picked)]

    def demos_for(self, text: str, labels: list[str] | None = None) -> list[dict[str, Any]]:
        """The query's demos: the k nearest (among `labels` if given) or, when `balanced` and
        labels are given, the ceil(k / len(labels)) nearest of each label, so the LM sees
        every candidate it may choose; least similar first either way."""
        if not (self.balanced and labels):
            return self.nearest(text, self.k, labels)
        index = self.index()
        per_label = -(-self.k // len(labels))
        picked = [i for label in labels
                  for i in index.nearest(text, per_label, self._mask(text, self._labels == label))]
        sims = index.scores([text])[0]
        picked.sort(key=lambda i: (sims[i], -i))
        return [dict(self.examples[i]) for i in picked]

    def top_labels(self, text: str, n: int, *, scored: bool = False) -> list:
        """The ranker's n best labels, best first; `scored`: (label, probability) pairs."""
        return self.ranker().top_scored(text, n) if scored else self.ranker().top(text, n)

    def top_labels_out_of_fold(self, text: str, n: int, folds: int = 5, *, scored: bool = False) -> list:
        """`top_labels` as a ranker that never saw `text` would give: the pool is cut into `folds`
        parts by a hash of the text, and the text is ranked by a ranker fitted on the other parts.
        On its own training messages the full ranker puts the gold label first almost always; out of
        fold it is right about as often as on new messages, which is what a model trained on the
        ranked lists should learn to expect.

        A message whose label the other parts never show (a label with one or two training rows) is
        ranked by the full ranker: a ranker that never saw the *label* is not what it meets at test
        time, and its list could not hold the gold label at all."""
        fold = zlib.crc32(text.encode()) % folds
        with self._lock:
            if (folds, fold) not in self._fold_rankers:
                rest = [e for e in self.examples if zlib.crc32(str(e[self.input_field]).encode()) % folds != fold]
                labels = [e[self.label_field] for e in rest]
                ranker = LabelRanker([str(e[self.input_field]) for e in rest], labels) \
                    if len(set(labels)) > 1 else None
                self._fold_rankers[folds, fold] = (ranker, set(labels))
            ranker, seen = self._fold_rankers[folds, fold]
            if self._labels_of is None:
                self._labels_of = {}
                for e in self.examples:
                    self._labels_of.setdefault(str(e[self.input_field]), set()).add(e[self.label_field])
            own = self._labels_of.get(text, set())
        if ranker is None or not own <= seen:
            return self.top_labels(text, n, scored=scored)
        return ranker.top_scored(text, n) if scored else ranker.top(text, n)
