"""Capture what one evaluated example did as a tree of spans, in memory.

The evaluation opens a trace per example (`Recorder.example`); while it is open, DSPy's
callbacks (module, LM, adapter format/parse, tool calls) and the programs' own `span(...)`
blocks (retrieval, candidate narrowing) add spans to it, in the thread that runs the
example. Nothing here imports MLflow: the finished `TraceRecord` is turned into MLflow
entities and written by `workbench.traces.writer`, in the background.

Every input and output is JSON-encoded once, as the span ends, and cut at
`MAX_VALUE_CHARS` with a marker, so a trace never grows past what the store accepts.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

MAX_VALUE_CHARS = 20_000  # one span's inputs or outputs, JSON-encoded
MAX_TRACE_CHARS = 1_000_000  # all of a trace's values; later spans lose their values beyond it
TRUNCATED = "…[truncated by workbench: {n} characters in all]"


def encode(value: Any, limit: int = MAX_VALUE_CHARS) -> tuple[str, bool]:
    """JSON for `value` (anything: DSPy predictions, pydantic models, numpy values), cut at `limit`."""
    text = json.dumps(value, default=_plain, ensure_ascii=False)
    if len(text) <= limit:
        return text, False
    marker = TRUNCATED.format(n=len(text))
    return json.dumps(text[: max(limit - len(marker), 0)] + marker, ensure_ascii=False), True


def _plain(value: Any) -> Any:
    for name in ("toDict", "model_dump", "tolist"):
        method = getattr(value, name, None)
        if callable(method):
            with contextlib.suppress(Exception):
                return method()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)[:2000]


@dataclass
class SpanRecord:
    span_id: int
    parent_id: int | None
    name: str
    span_type: str
    start_ns: int
    end_ns: int = 0
    inputs: str = "null"
    outputs: str = "null"
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # set: the span ended with an exception


@dataclass
class TraceRecord:
    """One example's spans; `tags`/`assessments` are filled in by the evaluation."""

    otel_trace_id: int
    spans: list[SpanRecord] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    assessments: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    truncated: bool = False
    chars: int = 0
    _stack: list[SpanRecord] = field(default_factory=list)
    _by_call: dict[str, SpanRecord] = field(default_factory=dict)

    @property
    def trace_id(self) -> str:
        return f"tr-{self.otel_trace_id:032x}"

    @property
    def root(self) -> SpanRecord:
        return self.spans[0]

    def open(self, name: str, span_type: str, inputs: Any = None, call_id: str | None = None) -> SpanRecord:
        parent = self._stack[-1].span_id if self._stack else None
        record = SpanRecord(_random_bits(64), parent, name, span_type, time.time_ns())
        self._set(record, "inputs", inputs)
        self.spans.append(record)
        self._stack.append(record)
        if call_id is not None:
            self._by_call[call_id] = record
        return record

    def close(self, record: SpanRecord, outputs: Any = None, exception: BaseException | None = None) -> None:
        record.end_ns = time.time_ns()
        self._set(record, "outputs", outputs)
        if exception is not None:
            text = str(exception).splitlines()[0][:500] if str(exception) else ""
            record.error = f"{type(exception).__name__}: {text}"
        if record in self._stack:  # spans close in order; one left open by a skipped end closes with its parent
            while self._stack and self._stack.pop() is not record:
                pass

    def close_call(self, call_id: str, outputs: Any = None,
                   exception: BaseException | None = None) -> SpanRecord | None:
        record = self._by_call.pop(call_id, None)
        if record is not None:
            self.close(record, outputs, exception)
        return record

    def _set(self, record: SpanRecord, which: str, value: Any) -> None:
        if value is None:
            return
        budget = MAX_TRACE_CHARS - self.chars
        text, cut = encode(value, min(MAX_VALUE_CHARS, max(budget, 200)))
        self.chars += len(text)
        self.truncated |= cut
        if cut:
            record.attributes["workbench.truncated"] = True
        setattr(record, which, text)


_current: ContextVar[TraceRecord | None] = ContextVar("workbench_trace", default=None)
_rng = random.Random()
_rng_lock = threading.Lock()


def _random_bits(bits: int) -> int:
    with _rng_lock:
        return _rng.getrandbits(bits) or 1


def current() -> TraceRecord | None:
    return _current.get()


@contextlib.contextmanager
def span(name: str, span_type: str = "UNKNOWN", inputs: Any = None):
    """A span of the example being traced (no-op otherwise); yields a dict: put `outputs` in it.

        with span("candidates", "RETRIEVER", {"text": text}) as out:
            out["outputs"] = labels
    """
    trace = _current.get()
    holder: dict[str, Any] = {}
    if trace is None:
        yield holder
        return
    record = trace.open(name, span_type, inputs)
    try:
        yield holder
    except BaseException as exc:
        trace.close(record, holder.get("outputs"), exc)
        raise
    trace.close(record, holder.get("outputs"))


@contextlib.contextmanager
def example_trace(name: str, inputs: dict[str, Any]):
    """Open the trace of one example in this thread; yields (trace, root) — set the root's outputs with
    `trace.close(root, ...)` before leaving, or it is closed without outputs."""
    trace = TraceRecord(_random_bits(128))
    root = trace.open(name, "CHAIN", inputs)
    token = _current.set(trace)
    try:
        yield trace, root
    finally:
        _current.reset(token)
        if not root.end_ns:
            trace.close(root)
