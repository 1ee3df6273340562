"""A function's JSON schema (BFCL dialect or standard) as a pydantic model of its arguments.

The model is the type of the tool-calling program's `arguments` output field, so DSPy sends
its JSON schema as the response format and the embedded LM decodes under a grammar built
from it: arguments are always well-typed. BFCL's dialect differs from JSON Schema in a few
type names (`dict`, `float`, `tuple`, `any`), mapped here. Optional arguments become
`T | None = None` and are dropped from the call when None. Argument names that are not
Python identifiers are kept through aliases.
"""

from __future__ import annotations

import keyword
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

# "any": a JSON value a grammar can describe (an empty schema has no grammar in llama.cpp)
ANY_VALUE = str | float | bool | list[str | float] | dict[str, str | float]
# Caps a small LM needs so that it cannot ramble until max_tokens runs out (and the call is lost)
STRING_CHARS = 160
ARRAY_ITEMS = 16
SCALARS = {"string": Annotated[str, StringConstraints(max_length=STRING_CHARS)], "integer": int, "float": float,
           "number": float, "boolean": bool, "bool": bool}


class ArgumentsModel(BaseModel):
    """Base of every generated arguments model; also a mapping (`**arguments` works), with
    optional arguments that were left out (None) dropped."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    def keys(self):
        return arguments_of(self).keys()

    def __getitem__(self, key):
        return arguments_of(self)[key]


class SchemaError(ValueError):
    """A schema the workbench cannot turn into a typed model (names the path inside it)."""


def _python_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", name) or "arg"
    if base[0].isdigit() or keyword.iskeyword(base) or base.startswith("_") or base in ("model_config", "schema"):
        base = f"arg_{base.lstrip('_')}"
    candidate, i = base, 1
    while candidate in taken:
        i += 1
        candidate = f"{base}_{i}"
    taken.add(candidate)
    return candidate


def type_of(schema: dict, path: str, model_name: str) -> Any:
    """The Python type for a (sub)schema."""
    if not isinstance(schema, dict):
        raise SchemaError(f"{path}: a schema must be an object, got {type(schema).__name__}")
    if "enum" in schema:
        values = schema["enum"]
        if not values or not all(isinstance(v, (str, int, bool)) for v in values):
            raise SchemaError(f"{path}: enum must be a non-empty list of strings or numbers")
        return Literal[tuple(values)]
    kind = schema.get("type", "any")
    if isinstance(kind, list):  # ["string", "null"] and the like: the first non-null type
        kind = next((k for k in kind if k != "null"), "any")
    if kind in SCALARS:
        return SCALARS[kind]
    if kind in ("array", "tuple"):
        items = schema.get("items")
        item_type = type_of(items, f"{path}[]", model_name) if items else str | float
        return Annotated[list[item_type], Field(max_length=ARRAY_ITEMS)]
    if kind in ("dict", "object"):
        if schema.get("properties"):
            return model_for(schema, f"{model_name}_{path.rsplit('.', 1)[-1]}", path)
        return dict[str, Any]
    if kind == "any":
        return ANY_VALUE
    raise SchemaError(f"{path}: unknown type {kind!r}")


def model_for(schema: dict, name: str, path: str = "parameters") -> type[BaseModel]:
    """A pydantic model whose fields are the schema's properties."""
    properties = schema.get("properties") or {}
    if not isinstance(properties, dict):
        raise SchemaError(f"{path}.properties must be an object")
    required = set(schema.get("required") or [])
    unknown = required - set(properties)
    if unknown:
        raise SchemaError(f"{path}.required names {sorted(unknown)}, which are not properties")
    fields, taken = {}, set()
    for arg, sub in properties.items():
        python = _python_name(arg, taken)
        annotation = type_of(sub, f"{path}.{arg}", name)
        description = (sub.get("description") or "")[:200] if isinstance(sub, dict) else ""
        if arg in required:
            fields[python] = (annotation, Field(alias=arg, description=description))
        else:
            fields[python] = (annotation | None, Field(default=None, alias=arg, description=description))
    safe = re.sub(r"\W", "_", name) or "Arguments"
    return create_model(safe, __base__=ArgumentsModel, **fields)


def arguments_of(value: Any) -> dict:
    """The call's arguments as plain JSON data, optional arguments left out when None."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dict(value) if isinstance(value, dict) else {}
