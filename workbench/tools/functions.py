"""Tools are typed Python functions; their signature and docstring become a JSON schema.

    @tool("geometry_area_circle")
    def area(radius: float, units: str = "m") -> float:
        '''Area of a circle.

        Args:
            radius: the circle's radius.
            units: the unit of length.
        '''

Annotations map to JSON types (int → integer, float → number, str → string, bool →
boolean, list[X] → array, dict → object, Literal → enum); a parameter with a default or
`X | None` is optional. A parameter without an annotation, `*args`/`**kwargs`, or a type
with no JSON form is a SchemaError naming the tool and parameter. `trusted` tools (our own,
like the calculator) run in-process; all others run in the sandbox (`sandbox.py`).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from workbench.registry import tools
from workbench.tools.schema import SchemaError

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


@dataclass(frozen=True)
class Tool:
    name: str
    fn: Callable[..., Any]
    trusted: bool = False
    timeout: float = 5.0

    def schema(self) -> dict:
        return function_schema(self.fn, self.name)


def tool(name: str | None = None, *, trusted: bool = False, timeout: float = 5.0):
    """Register a function as a tool (under its own name unless `name` is given)."""
    def register(fn):
        tools.register(name or fn.__name__)(Tool(name or fn.__name__, fn, trusted, timeout))
        return fn
    return register


def _json_type(annotation: Any, where: str) -> tuple[dict, bool]:
    """(schema, optional) for a parameter annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _json_type(rest[0], where)[0], type(None) in args
        return {"anyOf": [_json_type(a, where)[0] for a in rest]}, type(None) in args
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}, False
    if origin is Literal:
        return {"type": _JSON_TYPES.get(type(args[0]), "string"), "enum": list(args)}, False
    if annotation in (list, tuple) or origin in (list, tuple):
        items = _json_type(args[0], where)[0] if args and args[0] is not Ellipsis else {"type": "string"}
        return {"type": "array", "items": items}, False
    if annotation is dict or origin is dict:
        return {"type": "object"}, False
    raise SchemaError(f"{where}: type {annotation!r} has no JSON schema form")


def _arg_docs(doc: str) -> dict[str, str]:
    found, inside = {}, False
    for line in doc.splitlines():
        if re.match(r"^\s*(Args|Arguments|Parameters):\s*$", line):
            inside = True
            continue
        if inside:
            match = re.match(r"^\s+(\w+)\s*(\([^)]*\))?:\s*(.*)$", line)
            if match:
                found[match.group(1)] = match.group(3).strip()
            elif line.strip() and not line.startswith((" ", "\t")):
                inside = False
    return found


def function_schema(fn: Callable[..., Any], name: str | None = None) -> dict:
    """`{name, description, parameters: {type: object, properties, required}}` for `fn`."""
    name = name or fn.__name__
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # an annotation that does not resolve
        raise SchemaError(f"tool {name}: annotations do not resolve: {exc}") from None
    doc = inspect.getdoc(fn) or ""
    described = _arg_docs(doc)
    properties, required = {}, []
    for param in inspect.signature(fn).parameters.values():
        where = f"tool {name}, parameter {param.name}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise SchemaError(f"{where}: *args/**kwargs have no schema; name each parameter")
        if param.name not in hints:
            raise SchemaError(f"{where}: no type annotation")
        schema, optional = _json_type(hints[param.name], where)
        if param.name in described:
            schema["description"] = described[param.name]
        properties[param.name] = schema
        if param.default is param.empty and not optional:
            required.append(param.name)
    description = doc.split("\n\n")[0].strip() if doc else name
    return {"name": name, "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required}}
