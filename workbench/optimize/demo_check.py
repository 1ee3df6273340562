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

from workbench.program_contract import own_demos


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
    for name, predictor in program.named_predictors():
        demos = list(getattr(predictor, "demos", None) or [])
        seen = own_demos(program, name).get("demos", [])  # through the program's `as_demo`, if it has one
        dropped = len(demos) - len(seen) + sum(not _shown(d, predictor.signature) for d in seen)
        if dropped:
            fields = ", ".join(predictor.signature.input_fields) + " -> " + ", ".join(predictor.signature.output_fields)
            lines.append(f"{dropped} of {len(demos)} demos on predictor `{name}` lack its fields ({fields}) "
                         "and are dropped from its prompt")
    return lines
