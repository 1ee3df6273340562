"""Compiled demos the adapter will never show.

DSPy's adapters format a predictor's demo only when it carries at least one of the predictor's
input fields and one of its output fields; any other demo is dropped without a word. Optimizers
that copy raw training examples in as demos (LabeledFewShot, the labeled part of
BootstrapFewShot and its relatives) therefore give nothing to a predictor whose fields are not
the dataset's: the function caller's `call` predictor reads `request`/`function` and writes
`arguments`, while BFCL examples hold `question`/`functions`/`accepted`. The run then measures
the program without demos while its table says "5 demos". This check names such predictors;
a program that maps raw examples to its predictors' fields itself offers `as_demo(predictor,
example)` (the function caller does), and the check looks at what that returns.
"""

from __future__ import annotations

from typing import Any


def _shown(demo: Any, signature) -> bool:
    """The adapters' own rule: a complete demo, or one with some input and some output field."""
    def has(name: str) -> bool:
        try:
            return name in demo and demo[name] is not None
        except (TypeError, KeyError):
            return False

    return any(has(n) for n in signature.input_fields) and any(has(n) for n in signature.output_fields)


def unshown_demos(program: Any) -> list[str]:
    """One line per predictor with demos that no adapter will format (empty when all are shown)."""
    lines = []
    as_demo = getattr(program, "as_demo", None)  # a program that shows raw examples in its predictors' fields
    for name, predictor in program.named_predictors():
        demos = list(getattr(predictor, "demos", None) or [])
        seen = [as_demo(name, d) for d in demos] if callable(as_demo) else demos
        dropped = [d for d in seen if d is None or not _shown(d, predictor.signature)]
        if dropped:
            fields = ", ".join(predictor.signature.input_fields) + " -> " + ", ".join(predictor.signature.output_fields)
            lines.append(f"{len(dropped)} of {len(demos)} demos on predictor `{name}` lack its fields ({fields}) "
                         "and are dropped from its prompt")
    return lines
