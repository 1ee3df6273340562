"""Prompt adapters. `compact_json` is DSPy's JSONAdapter with a prompt sized for small LMs.

On 2 CPU cores the embedded LM reads prompts at a few hundred tokens per second, so prompt
length is latency. The compact adapter keeps JSON outputs (and so schema-constrained
decoding) but renders a short, constant system message (llama.cpp reuses its KV cache for
a constant prefix), one line per input field, one-line JSON demos, and the allowed values
of short `Literal` outputs in the final user turn, where narrowed label sets can change
per call without breaking the cached prefix.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import dspy
import pydantic
from dspy.adapters.utils import format_field_value

MAX_INLINE_CHOICES = 20
CONSTRAINT_KEYS = ("maxLength", "minLength", "maxItems", "minItems", "pattern", "minimum", "maximum")


def literal_values(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(v) for v in typing.get_args(annotation)]
    return None


class CompactJSONAdapter(dspy.JSONAdapter):
    """JSON in, JSON out, few tokens."""

    def _prepare_response_format(self, lm, lm_kwargs, signature):
        """DSPy's schema drops pydantic constraints (`Annotated[str, StringConstraints(max_length=…)]`,
        `Field(max_length=…)` on lists); put maxLength/maxItems/... back so a grammar enforces them."""
        super()._prepare_response_format(lm, lm_kwargs, signature)
        model = lm_kwargs.get("response_format")
        if not isinstance(model, type):
            return
        schema = model.model_json_schema()
        for name, info in signature.output_fields.items():
            if info.metadata and name in schema.get("properties", {}):
                limits = pydantic.TypeAdapter(typing.Annotated[info.annotation, *info.metadata]).json_schema()
                schema["properties"][name].update({k: v for k, v in limits.items() if k in CONSTRAINT_KEYS})
        model.model_json_schema = lambda *args, **kwargs: schema

    def format_system_message(self, signature) -> str:
        keys = ", ".join(f'"{name}"' for name in signature.output_fields)
        lines = [signature.instructions.strip(), f"Reply with one JSON object with the keys {keys}."]
        for name, info in signature.output_fields.items():
            choices = literal_values(info.annotation)
            if choices and len(choices) > MAX_INLINE_CHOICES:
                lines.append(f"{name} is one of: {', '.join(choices)}")
            desc = (info.json_schema_extra or {}).get("desc", "")
            if not choices and desc and not desc.startswith("${"):
                lines.append(f"{name}: {desc}")
        return "\n".join(lines)

    def format_user_message_content(self, signature, inputs: dict[str, Any], prefix: str = "", suffix: str = "",
                                    main_request: bool = False) -> str:
        lines = [prefix] if prefix else []
        for name, info in signature.input_fields.items():
            if name in inputs:
                lines.append(f"{name}: {format_field_value(field_info=info, value=inputs[name])}")
        if main_request:
            for name, info in signature.output_fields.items():
                choices = literal_values(info.annotation)
                if choices and len(choices) <= MAX_INLINE_CHOICES:
                    lines.append(f"{name} must be one of: {', '.join(choices)}")
        if suffix:
            lines.append(suffix)
        return "\n".join(lines)

    def format_assistant_message_content(self, signature, outputs: dict[str, Any], missing_field_message=None) -> str:
        values = {name: outputs.get(name, missing_field_message) for name in signature.output_fields}
        return json.dumps(values, ensure_ascii=False, default=str)


ADAPTERS = {"compact_json": CompactJSONAdapter, "json": dspy.JSONAdapter, "chat": dspy.ChatAdapter}


def build_adapter(name: str) -> dspy.Adapter:
    return ADAPTERS[name]()
