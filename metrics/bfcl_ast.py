"""BFCL-style AST matching of one predicted function call against the accepted calls.

A prediction carries `call`: `{"name": str, "arguments": dict}` (or None when the LM output
did not parse). An example carries `accepted`: BFCL's ground truth, a list of
`{function name: {argument: [accepted values]}}`; `""` among an argument's accepted values
means it may be omitted. Matching follows BFCL's rules: the function name must be right,
every required argument present, no unknown argument, each value among the accepted ones,
type-aware (an int is accepted for a float parameter, not the reverse; a bool is never a
number), strings compared after BFCL's normalisation (lowercase, no spaces or ,./-_*^),
lists element by element, dicts key by key. The first error found is the error type.
"""

from __future__ import annotations

import json
import re
from typing import Any

import dspy

from workbench.registry import metric

ERROR_TYPES = ("correct", "wrong function", "missing argument", "unexpected argument", "wrong type", "wrong value",
               "unparseable")
_STRIP = re.compile(r"[ ,./\-_*^]")


def normalize_string(value: str) -> str:
    return _STRIP.sub("", value).lower()


def _type_ok(value: Any, accepted: Any) -> bool:
    if isinstance(accepted, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(accepted, bool)
    if isinstance(accepted, float):
        return isinstance(value, (int, float))
    if isinstance(accepted, int):
        return isinstance(value, int)
    if isinstance(accepted, str):
        return isinstance(value, str)
    if isinstance(accepted, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(accepted, dict):
        return isinstance(value, dict)
    return True


def value_matches(value: Any, accepted: Any) -> bool:
    """One predicted value against one accepted value (recursively for lists and dicts)."""
    if not _type_ok(value, accepted):
        return False
    if isinstance(accepted, str):
        return normalize_string(value) == normalize_string(accepted)
    if isinstance(accepted, bool):
        return value is accepted
    if isinstance(accepted, (int, float)):
        return float(value) == float(accepted)
    if isinstance(accepted, (list, tuple)):
        return len(value) == len(accepted) and all(value_matches(v, a) for v, a in zip(value, accepted))
    if isinstance(accepted, dict):
        if set(value) - set(accepted):
            return False
        for key, options in accepted.items():
            options = options if isinstance(options, list) else [options]
            if key not in value:
                if "" not in options:
                    return False
            elif not any(value_matches(value[key], o) for o in options if o != ""):
                return False
        return True
    return value == accepted


def _argument_error(value: Any, options: list) -> str | None:
    candidates = [o for o in options if o != ""]
    if any(value_matches(value, o) for o in candidates):
        return None
    if candidates and not any(_type_ok(value, o) for o in candidates):
        return "wrong type"
    return "wrong value"


def match_call(call: dict | None, accepted: list[dict]) -> str:
    """The error type of `call` against BFCL's accepted calls ("correct" when it matches one)."""
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not isinstance(call.get("arguments"), dict):
        return "unparseable"
    errors = []
    for option in accepted:
        [(name, arguments)] = option.items()
        if call["name"] != name:
            errors.append("wrong function")
            continue
        errors.append(_arguments_error(call["arguments"], arguments))
    if "correct" in errors:
        return "correct"
    return min(errors, key=ERROR_TYPES.index) if errors else "wrong function"


def _arguments_error(given: dict, accepted: dict[str, list]) -> str:
    unknown = set(given) - set(accepted)
    if unknown:
        return "unexpected argument"
    for argument, options in accepted.items():
        if argument not in given:
            if "" not in options:
                return "missing argument"
            continue
        error = _argument_error(given[argument], options)
        if error:
            return error
    return "correct"


def accepted_calls(example) -> list[dict]:
    """The example's accepted calls (stored as a JSON string in the dataset)."""
    value = example.accepted
    return json.loads(value) if isinstance(value, str) else list(value)


def _call(prediction) -> dict | None:
    call = getattr(prediction, "call", None) if prediction is not None else None
    return call if isinstance(call, dict) else None


@metric("ast_match")
def ast_match(example, prediction, trace=None) -> float:
    """1.0 when the predicted call matches one of BFCL's accepted calls."""
    return float(match_call(_call(prediction), accepted_calls(example)) == "correct")


@metric("ast_match_feedback")
def ast_match_feedback(example, prediction, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
    """AST match plus the error type and the accepted call, for reflective optimizers (GEPA)."""
    call = _call(prediction)
    accepted = accepted_calls(example)
    error = match_call(call, accepted)
    [(name, arguments)] = accepted[0].items()
    expected = {k: [v for v in vs if v != ""][:1] for k, vs in arguments.items()}
    feedback = "Correct call." if error == "correct" else (
        f"{error}: predicted {call!r}; an accepted call is {name}({expected}) "
        "(values in lists are alternatives; arguments with no value may be omitted).")
    return dspy.Prediction(score=float(error == "correct"), feedback=feedback)
