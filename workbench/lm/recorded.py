"""A deterministic LM for fast tests: recorded answers replayed, the rest derived from the request.

`lm.backend: recorded` answers in microseconds and always the same way, so the logic of
specs, metrics, statistics, comparisons, gates, exports, sweeps and servers can be tested
without the embedded model's seconds per call. It passes the backend contract suite.

- `lm.model: synthetic` (or any name that is not a file): every answer is derived from the
  request. An output field with allowed values (a label) takes the value the demos in the
  conversation give most often — so few-shot programs score like a nearest-neighbour
  classifier and zero-shot ones by chance (a hash of the message picks) — other fields get a
  minimal valid value of their JSON schema; free text repeats the message's words up to
  `max_tokens` and reports `length` when cut.
- `lm.model: PATH.jsonl`: answers recorded from a real backend are replayed where the
  request (messages, schema, decoding settings) matches exactly; the rest are derived.
  `WORKBENCH_RECORD_LM=PATH.jsonl` makes any backend append what it answers to that file.

Tokens are counted like the rate limiter books them: prompt characters / 4, one token per
output word.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any

from dspy.lm15 import Usage

from workbench.lm.base import Backend
from workbench.registry import lm_backend

FREE_TEXT_WORDS = 48


def request_key(messages: list[dict[str, str]], schema: dict[str, Any] | None, config) -> str:
    """What makes two requests the same: messages, output schema and decoding settings."""
    body = {"messages": messages, "schema": schema, "temperature": config.temperature,
            "max_tokens": config.max_tokens, "stop": list(config.stop or ()), "seed": config.seed}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _stable_index(text: str, size: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % size


def _choose(values: list[Any], messages: list[dict[str, str]]) -> Any:
    """The value the demos (earlier assistant turns) answer most often; else one picked by the message."""
    counts = {i: 0 for i in range(len(values))}
    for message in messages:
        if message["role"] != "assistant":
            continue
        for i, value in enumerate(values):
            counts[i] += len(re.findall(rf'(?<![\w-]){re.escape(json.dumps(value))}(?![\w-])', message["content"]))
    best = max(counts.values())
    if best > 0:
        return values[next(i for i, c in counts.items() if c == best)]
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return values[_stable_index(last, len(values))]


def _words(messages: list[dict[str, str]]) -> list[str]:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return re.findall(r"\w+", last) or ["answer"]


def instance(schema: dict[str, Any], messages: list[dict[str, str]], defs: dict[str, Any] | None = None) -> Any:
    """A minimal value that validates against `schema` (the subset DSPy's adapters send)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return instance(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), messages, defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return _choose(list(schema["enum"]), messages)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return instance(options[0], messages, defs)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties", {})
        wanted = schema.get("required", list(props))
        return {name: instance(props[name], messages, defs) for name in props if name in wanted}
    if kind == "array":
        return [instance(schema.get("items", {}), messages, defs) for _ in range(schema.get("minItems", 0))]
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 0), 0) if kind == "integer" else float(max(schema.get("minimum", 0), 0))
    if kind == "boolean":
        return False
    text = " ".join(_words(messages)[:8])
    return text[:schema["maxLength"]] if "maxLength" in schema else text


class RecordedBackend(Backend):
    """Replays recorded answers; derives the others from the request (module docstring)."""

    in_process = True

    def __init__(self, model: str = "synthetic", *, source: str = "<spec>") -> None:
        self.path = Path(model) if model.endswith(".jsonl") else None
        self.recordings: dict[str, dict[str, Any]] = {}
        if self.path is not None:
            from workbench.errors import UserError

            if not self.path.is_file():
                raise UserError(f"no recordings file {self.path}", file=source, field="lm.model")
            for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    entry = json.loads(line)
                    self.recordings[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise UserError(f"line {number} of {self.path} is not a recording", file=source,
                                    field="lm.model") from None
        digest = hashlib.sha256("".join(sorted(self.recordings)).encode()).hexdigest()[:12]
        super().__init__(f"recorded/{self.path.stem if self.path else 'synthetic'}-{digest}")
        self.replayed = 0

    def describe(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "backend": "recorded", "recordings": len(self.recordings)}

    def _generate(self, messages, schema, config):
        entry = self.recordings.get(request_key(messages, schema, config)) if self.recordings else None
        if entry is not None:
            self.replayed += 1
            return entry["text"], Usage(input_tokens=entry["input_tokens"], output_tokens=entry["output_tokens"]), \
                entry["finish"]
        prompt_tokens = sum(len(m["content"]) for m in messages) // 4 + 1
        limit = config.max_tokens or 256
        if schema is None:
            words = (_words(messages) * FREE_TEXT_WORDS)[:FREE_TEXT_WORDS]
            finish = "length" if len(words) > limit else "stop"
            words = words[:limit]
            return " ".join(words), Usage(input_tokens=prompt_tokens, output_tokens=len(words)), finish
        text = json.dumps(instance(schema, messages) if schema else {}, ensure_ascii=False)
        return text, Usage(input_tokens=prompt_tokens, output_tokens=max(1, len(text.split()))), "stop"


class Recorder:
    """Appends every answer a backend gives (after retries) to a JSONL file, for replay."""

    def __init__(self, backend: Backend, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        inner = backend._generate

        def recording(messages, schema, config):
            text, usage, finish = inner(messages, schema, config)
            line = json.dumps({"key": request_key(messages, schema, config), "text": text, "finish": finish,
                               "input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0})
            with self.lock, self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
            return text, usage, finish

        backend._generate = recording


@lm_backend("recorded")
def recorded(spec, source: str = "<spec>") -> RecordedBackend:
    """Deterministic answers for fast tests: recordings replayed (lm.model: a .jsonl), the rest derived."""
    return RecordedBackend(spec.model, source=source)
