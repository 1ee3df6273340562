"""Routing: classify a message into one label of a set that comes from the data.

The LM always makes the final decision, and its output is constrained to valid labels
(a `Literal` output field, decoded under a grammar by the embedded LM). Two cheap helpers
make a small LM usable: `candidates` narrows the labels the LM may choose from to the top
n of a TF-IDF classifier (listed by rank, or with `candidate_order: label` in the label set's
order, so a model fine-tuned on the lists cannot learn to copy the ranker's first; with
`ranker_hint` the ranker's best label and its probability are an input too, or with `hint_from: p`
only when that probability is at least p; `unsure_weight` makes fine-tuning see the messages its ranker
is unsure of first, `hint_dropout` hides the hint from a share of the training prompts), and the pool's
`k` (set by the retrieval_demos optimizer) picks the k most similar training examples as demos
for every query.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Literal

import dspy

from programs.pool import ExamplePool
from programs.routing_params import check_router_params
from workbench.data import TaskData, column
from workbench.registry import program
from workbench.traces import span

HINT_DESC = "the TF-IDF ranker's most probable label and its probability"
DEFAULT_INSTRUCTIONS = "Classify the user's message into exactly one of the allowed labels."


def route_signature(labels: list[str], instructions: str = DEFAULT_INSTRUCTIONS, *,
                    ranker_hint: bool = False, hint_from: float = 0.0) -> type[dspy.Signature]:
    fields = {"text": (str, dspy.InputField(desc="the user's message"))}
    if ranker_hint:
        desc = HINT_DESC + (f", or none when that probability is below {hint_from:g}" if hint_from else "")
        fields["ranker_guess"] = (str, dspy.InputField(desc=desc))
    fields["label"] = (Literal[tuple(labels)], dspy.OutputField(desc="the label that fits the message best"))
    return dspy.Signature(fields, instructions)


def ranker_guess(scored: list[tuple[str, float]], hint_from: float = 0.0) -> str:
    """The hint's text: the ranker's best label and its probability ("card_arrival (0.62)"), or "none"
    when that probability is below `hint_from`."""
    return f"{scored[0][0]} ({scored[0][1]:.2f})" if scored and scored[0][1] >= hint_from else "none"


def hidden_in_training(text: str, share: float) -> bool:
    """Whether `hint_dropout: share` hides the hint from this training message's prompt: a fixed draw
    from the text's hash (salted apart from the out-of-fold ranker's folds), so pairs are reproducible."""
    draw = int.from_bytes(hashlib.sha256(("hint-dropout\0" + text).encode()).digest()[:8], "big") / 2**64
    return draw < share


class Router(dspy.Module):
    """text -> label, with optional candidate narrowing and per-query retrieved demos."""

    table_fields = ("candidates",)  # the labels the LM was allowed (ranker's best first), for the per-example table

    def __init__(self, labels: list[str], *, candidates: int = 0, instructions: str = DEFAULT_INSTRUCTIONS,
                 pool: ExamplePool | None = None, candidate_order: str = "rank", ranker_hint: bool = False,
                 unsure_weight: float = 1.0, hint_from: float = 0.0, hint_dropout: float = 0.0):
        super().__init__()
        check_router_params({"candidates": candidates, "candidate_order": candidate_order, "ranker_hint": ranker_hint,
                             "unsure_weight": unsure_weight, "hint_from": hint_from, "hint_dropout": hint_dropout})
        if candidates > len(labels):
            raise ValueError(f"candidates must be between 0 and the number of labels ({len(labels)})")
        self.hint_from, self.hint_dropout = float(hint_from), float(hint_dropout)
        self.labels = list(labels)
        self.candidates = candidates
        self.candidate_order = candidate_order
        self.ranker_hint = ranker_hint
        self.unsure_weight = float(unsure_weight)
        self._recorded_top = 1.0  # the out-of-fold ranker's top probability for the message being recorded
        self._position = {label: i for i, label in enumerate(self.labels)}
        self.predict = dspy.Predict(route_signature(self.labels, instructions, ranker_hint=self.ranker_hint,
                                                     hint_from=self.hint_from))
        self.demo_pool = pool or ExamplePool()
        self._signatures: dict[tuple[str, ...], type[dspy.Signature]] = {}
        self._out_of_fold = False

    @contextlib.contextmanager
    def recording_training_pairs(self) -> Iterator[None]:
        """While `finetune` records training prompts, each message's candidates are ranked out of
        fold (by a ranker fitted without it): the full ranker was fitted on these very training
        messages and ranks their gold label first almost always, so a model trained on those lists
        learns to take the first candidate. Out of fold, the first candidate is right about as often
        as at test time and the list's order still carries the ranker's evidence. (A gold label
        outside the list makes no pair: the answer would not parse under its prompt.)"""
        self._out_of_fold = True
        try:
            yield
        finally:
            self._out_of_fold = False

    def finetune_weight(self, example: dspy.Example, prediction: dspy.Prediction) -> float:
        """The training pair's weight: 1 + (unsure_weight - 1) * (1 - p), p the out-of-fold ranker's top
        probability for the message (1 for a sure ranker, up to unsure_weight for an unsure one). Under a
        time budget the schedule then shows more of the messages where the LM's own judgement matters
        than their share, and fewer of those where copying the ranker's guess is right."""
        return 1.0 + (self.unsure_weight - 1.0) * (1.0 - self._recorded_top)

    def _signature_for(self, allowed: list[str]) -> type[dspy.Signature]:
        """The predictor's current signature (instructions may be optimized) with the label
        type narrowed to `allowed`."""
        base = self.predict.signature
        key = (base.instructions, *allowed)
        if key not in self._signatures:
            field = base.output_fields["label"]
            self._signatures[key] = base.with_updated_fields("label", type_=Literal[tuple(allowed)],
                                                             desc=field.json_schema_extra.get("desc"))
        return self._signatures[key]

    # Export: what rebuilds this module without the dataset (the pool and the optimized
    # instructions and demos come back from its DSPy state).
    def export_config(self) -> dict:
        return {"labels": self.labels, "candidates": self.candidates, "candidate_order": self.candidate_order,
                "ranker_hint": self.ranker_hint, "hint_from": self.hint_from}

    @classmethod
    def from_export_config(cls, config: dict) -> Router:
        return cls(list(config["labels"]), candidates=int(config["candidates"]),
                   candidate_order=config.get("candidate_order", "rank"), ranker_hint=config.get("ranker_hint", False),
                   hint_from=config.get("hint_from", 0.0))

    def plain_prompt(self) -> dict:
        """What a client needs to rebuild this program's prompt without DSPy: the one
        predictor, the label set, the fixed demos, and the query-time steps (top-n candidate
        labels from a TF-IDF logistic-regression ranker, k nearest pool examples as demos)."""
        pool = self.demo_pool
        return {"predictor": "predict", "labels": list(self.labels), "candidates": self.candidates if pool.examples else 0,
                "candidate_order": self.candidate_order, "ranker_hint": self.ranker_hint, "hint_from": self.hint_from,
                "fixed_demos": [d.toDict() if hasattr(d, "toDict") else dict(d) for d in self.predict.demos],
                "pool": {"input_field": pool.input_field, "label_field": pool.label_field, "k": pool.k,
                         "balanced": pool.balanced, "ranker_C": 10.0, "examples": pool.examples}
                if pool.examples and (pool.k or self.candidates) else None}

    def warm_up(self) -> None:
        """Fit the pool's index and ranker now, so the first query does not pay for them."""
        if self.demo_pool.examples and self.demo_pool.k:
            self.demo_pool.index()
        if self.demo_pool.examples and self.candidates:
            self.demo_pool.ranker()

    def ranked_labels(self, text: str) -> list[str]:
        """The candidates by the ranker's score, best first (all labels when nothing narrows)."""
        return [label for label, _ in self._scored(text)] if self._narrows() else self.labels

    def _narrows(self) -> bool:
        return bool(self.candidates and self.demo_pool.examples)

    def _scored(self, text: str) -> list[tuple[str, float]]:
        if self._out_of_fold:
            return self.demo_pool.top_labels_out_of_fold(text, self.candidates, scored=True)
        return self.demo_pool.top_labels(text, self.candidates, scored=True)

    def allowed_labels(self, text: str) -> list[str]:
        """The candidates as the prompt lists them (see `candidate_order`)."""
        return self._in_prompt_order(self.ranked_labels(text))

    def _in_prompt_order(self, ranked: list[str]) -> list[str]:
        if self.candidate_order == "label" and len(ranked) != len(self.labels):
            return sorted(ranked, key=lambda label: self._position.get(label, len(self._position)))
        return ranked

    def _hint(self, text: str, scored: list[tuple[str, float]]) -> str:
        if self._out_of_fold and self.hint_dropout and hidden_in_training(text, self.hint_dropout):
            return "none"
        return ranker_guess(scored, self.hint_from)

    def forward(self, text: str) -> dspy.Prediction:
        with span("candidate labels", "RETRIEVER", {"text": text, "candidates": self.candidates}) as out:
            scored = self._scored(text) if self._narrows() else []
            if self._out_of_fold:
                self._recorded_top = scored[0][1] if scored else 1.0
            ranked = out["outputs"] = [label for label, _ in scored] or self.labels
        allowed = self._in_prompt_order(ranked)
        kwargs = {"ranker_guess": self._hint(text, scored)} if self.ranker_hint else {}
        if len(allowed) != len(self.labels):
            kwargs["signature"] = self._signature_for(allowed)
        if self.demo_pool.k and self.demo_pool.examples:
            narrowed = allowed if len(allowed) != len(self.labels) else None
            with span("retrieve demos", "RETRIEVER", {"text": text, "k": self.demo_pool.k}) as out:
                kwargs["demos"] = [dspy.Example(**d) for d in self.demo_pool.demos_for(text, narrowed)]
                out["outputs"] = [d.toDict() for d in kwargs["demos"]]
        prediction = self.predict(text=text, **kwargs)
        # by the ranker's score whatever the prompt's order: the table shows what the ranker alone would pick
        prediction.candidates = ranked if len(ranked) != len(self.labels) else []
        return prediction


@program("router")
def router(data: TaskData, *, candidates: int = 0, instructions: str = DEFAULT_INSTRUCTIONS,
           candidate_order: str = "rank", ranker_hint: bool = False, unsure_weight: float = 1.0,
           hint_from: float = 0.0, hint_dropout: float = 0.0) -> Router:
    """A router over `data.labels`; its pool holds the train split (for candidates and demos).
    `candidate_order`: list the candidates by the ranker's score (`rank`) or in the label set's order.
    `ranker_hint`: also show the LM the ranker's best label and its probability, so that a fine-tuned
    LM can learn when the ranker is to be trusted (the LM still decides). `unsure_weight` (fine-tuning
    only): a training message is drawn up to this many times as early, the less sure the ranker is of it.
    `hint_from: p`: the hint reads "none" where the ranker's probability is below p, so the LM learns to read
    the message there and to keep a sure guess elsewhere. `hint_dropout: s` (fine-tuning only): the hint
    also reads "none" in about this share of the training prompts, so the LM keeps learning the labels from
    messages the ranker is sure of."""
    if not data.labels:
        raise ValueError(f"dataset {data.name} has no label set; the router needs one")
    train = data.splits["train"]
    pool = ExamplePool(data.input_fields[0], data.label_field,
                       [{data.input_fields[0]: t, data.label_field: y}
                        for t, y in zip(column(train, data.input_fields[0]), column(train, data.label_field))])
    return Router(data.labels, candidates=candidates, instructions=instructions, pool=pool,
                  candidate_order=candidate_order, ranker_hint=ranker_hint, unsure_weight=unsure_weight,
                  hint_from=hint_from, hint_dropout=hint_dropout)


router.check_params = check_router_params  # at spec time, before DSPy is imported (workbench/program_params.py)
