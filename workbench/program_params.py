"""A program's parameters checked when the spec is, before DSPy is imported: each against the
type of its default (from the registry index: `candidates: ten` for an integer, `ranker_hint: yes`
for true/false), then by the program's own check where it declares one light enough
(`factory.check_params = fn`, fn in a module that does not import DSPy; see programs/routing_params.py).
What needs the data (e.g. more candidates than the data has labels) is checked when the program is built."""

from __future__ import annotations

from typing import Any

from workbench.errors import UserError

# (a default of this type, what a value must be, the types that fit: an integer is a number too)
_KINDS = ((bool, "true or false", (bool,)), (int, "an integer", (int,)), (float, "a number", (int, float)),
          (str, "text", (str,)))


def _wrong_type(value: Any, default: Any) -> str | None:
    """What the value should be, if its type does not fit the default's (None: it fits)."""
    for kind, said, fits in _KINDS:
        if isinstance(default, kind):  # bool first: True is an int too
            return None if isinstance(value, fits) and (kind is bool or not isinstance(value, bool)) else said
    return None


def check_program_params(info: dict[str, Any], params: dict[str, Any], source: str,
                         field: str = "program.params") -> None:
    """One-line UserError naming the first parameter whose type or combination cannot work."""
    defaults = info.get("defaults") or {}
    for key, value in params.items():
        said = _wrong_type(value, defaults[key]) if key in defaults else None
        if said:
            raise UserError(f"{key} must be {said}, got {value!r}", file=source, field=f"{field}.{key}")
    check = info.get("check") or ""
    if check.startswith("call:"):
        from workbench.registry_index import check_function

        try:
            check_function(check)(dict(params))
        except (TypeError, ValueError) as exc:
            raise UserError(str(exc), file=source, field=field) from None
