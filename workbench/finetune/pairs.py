"""Training pairs from the program's own prompts.

The program runs forward on each training example with its adapter (DSPy's prompt formatter)
wrapped: every LM call it would make is recorded as the exact messages the LM would receive,
with the answer the program should give, rendered by the same adapter so that it parses back
to that answer. Two sources of answers:

- `gold`: the example's own output fields (a routing label, say), or, when the program defines
  `finetune_gold(example) -> {output field: value}`, what that returns (a function caller turns
  BFCL's accepted-values lists into the one call it should make). No LM is called: the recorder
  answers every call itself, so later steps of the program see the gold answer too. When a
  metric is given, an example is kept only if the program, so answered, passes it (a function
  caller that picks the wrong function by word overlap would otherwise learn a call to it). An
  answer that does not parse under its own prompt (a gold label missing from a router's narrowed
  candidates) makes no pair: it would teach an answer the prompt forbids.
- `bootstrap`: the LM answers; the example's calls are kept only when the program's final
  prediction passes the metric (DSPy's bootstrapped traces). For outputs the data does not
  hold, such as a reasoning field.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy

from workbench.errors import UserError


@dataclass
class Pair:
    messages: list[dict[str, Any]]  # the prompt, as the LM receives it
    answer: str                     # the assistant turn that parses to the wanted outputs
    weight: float = 1.0             # how strongly training's schedule prefers it (see train._batches)


class GoldNotAllowed(Exception):
    """The gold answer does not parse under the prompt it would answer (a router's gold label outside
    the candidates that prompt lists): no pair from this example."""


class MissingGold(Exception):
    def __init__(self, fields: list[str]):
        super().__init__(", ".join(fields))
        self.fields = fields


class _Recorder:
    """Stands in for the adapter while the program runs: formats each call, records it, and
    answers it from `gold` (or passes it to the real adapter and LM when `gold` is None)."""

    def __init__(self, inner: dspy.Adapter):
        self.inner = inner
        self.gold: dict[str, Any] | None = None
        self.calls: list[Pair] = []

    def __getattr__(self, name: str):  # anything else DSPy asks of an adapter
        return getattr(self.inner, name)

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        messages = self.inner.format(signature, demos, inputs)
        if self.gold is None:
            outputs = self.inner(lm, lm_kwargs=lm_kwargs, signature=signature, demos=demos, inputs=inputs)
            first = {k: v for k, v in outputs[0].items() if k in signature.output_fields}
        else:
            missing = [name for name in signature.output_fields if name not in self.gold]
            if missing:
                raise MissingGold(missing)
            first = {name: self.gold[name] for name in signature.output_fields}
            outputs = [dict(first)]
        answer = self.inner.format_assistant_message_content(signature, first)
        if self.gold is not None:
            try:
                self.inner.parse(signature, answer)
            except Exception as exc:
                raise GoldNotAllowed() from exc
        self.calls.append(Pair(messages, answer))
        return outputs


def build_pairs(program: dspy.Module, examples: list[dspy.Example], *, source: str = "gold",
                metric: Callable[..., float] | None = None, progress: Callable[[int, int], None] | None = None,
                spec_file: str = "<spec>", skipped: dict[str, int] | None = None) -> list[Pair]:
    """One or more pairs per example (one per LM call the program makes for it). `skipped`, when
    given, is filled with how many examples made no pair and why (`outside_choices`: the gold answer
    does not parse under its prompt; `failed_metric`; `failed_call`: bootstrap's LM call or parse)."""
    counts = skipped if skipped is not None else {}
    counts.update(outside_choices=0, failed_metric=0, failed_call=0)
    if source not in ("gold", "bootstrap"):
        raise UserError(f"source must be gold or bootstrap, got {source!r}", file=spec_file,
                        field="optimizer.params.source")
    recorder = _Recorder(dspy.settings.adapter or dspy.JSONAdapter())
    pairs: list[Pair] = []
    # gold answers need no LM; DSPy still wants one configured (the recorder never calls it)
    lm = dspy.settings.lm or (dspy.LM("workbench/gold-answers") if source == "gold" else None)
    gold_of = getattr(program, "finetune_gold", None) or (lambda example: dict(example.labels()))
    # a program may weigh its examples (the router: more, the less sure its ranker is of the message)
    weigh = getattr(program, "finetune_weight", None)
    # a program may present its training prompts differently while they are recorded (the router ranks
    # its candidates out of fold, so their order does not give the answer away), and a pool of retrieved
    # demos (which holds these very examples) never offers the query itself as its own demo
    recording = getattr(program, "recording_training_pairs", contextlib.nullcontext)
    with dspy.context(adapter=recorder, lm=lm), recording(), contextlib.ExitStack() as stack:
        for _, parameter in program.named_parameters():
            if callable(getattr(parameter, "leaving_self_out", None)):
                stack.enter_context(parameter.leaving_self_out())
        for i, example in enumerate(examples):
            recorder.calls = []
            recorder.gold = gold_of(example) if source == "gold" else None
            try:
                prediction = program(**example.inputs())
            except GoldNotAllowed:
                counts["outside_choices"] += 1
                prediction = None
            except MissingGold as missing:
                raise UserError(f"the training examples have no {missing} field for the program's output, so there "
                                "is no gold answer to train on; use source: bootstrap (the LM answers, the metric "
                                "keeps the right ones)", file=spec_file, field="optimizer.params.source") from None
            except Exception:  # bootstrap: a failed call or parse loses this example only
                if source == "gold":
                    raise
                counts["failed_call"] += 1
                prediction = None
            if prediction is not None and (metric(example, prediction) >= 1.0 if metric is not None
                                           else source == "gold"):
                weight = float(weigh(example, prediction)) if callable(weigh) else 1.0
                if not math.isfinite(weight) or weight <= 0:
                    raise ValueError(f"finetune_weight must be a positive number, got {weight!r}")
                pairs.extend(Pair(call.messages, call.answer, weight) for call in recorder.calls)
            elif prediction is not None:
                counts["failed_metric"] += 1
            if progress:
                progress(i + 1, len(examples))
    return pairs


def pairs_digest(pairs: list[Pair]) -> str:
    digest = hashlib.sha256()
    for pair in pairs:
        weighed = [pair.weight] if pair.weight != 1.0 else []  # unweighted pairs keep their digest (and cached adapter)
        digest.update(json.dumps([pair.messages, pair.answer, *weighed], sort_keys=True, default=str).encode())
    return digest.hexdigest()
