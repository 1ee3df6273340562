"""DSPy's callbacks as spans of the example being traced (see recorder.py).

Module calls, LM calls (the rendered messages in, the raw completion out, token usage),
the adapter's format (signature + demos -> messages) and parse (text -> fields), and tool
calls. A callback outside a traced example does nothing, so it can stay installed.
"""

from __future__ import annotations

from typing import Any

from dspy.utils.callback import BaseCallback

from workbench.traces.recorder import current


def _module_type(instance: Any) -> str:
    import dspy

    if isinstance(instance, dspy.Retrieve):
        return "RETRIEVER"
    if isinstance(instance, dspy.ReAct):
        return "AGENT"
    if isinstance(instance, dspy.Predict):
        return "LLM"
    return "CHAIN"


def _inputs_without_demos(inputs: dict[str, Any]) -> dict[str, Any]:
    out = dict(inputs)
    if not out.get("args"):
        out.pop("args", None)
    kwargs = out.pop("kwargs", None)
    if isinstance(kwargs, dict):
        out.update(kwargs)
    demos = out.pop("demos", None)
    if demos:
        out["demos"] = f"{len(demos)} demos (see the adapter's format span)"
    if "signature" in out:
        out["signature"] = getattr(out["signature"], "__name__", str(out["signature"]))
    return out


def _open_adapter_span(trace, name: str, inputs: Any, call_id: str) -> None:
    """DSPy wraps an adapter's format/parse once per class in its hierarchy, so one call arrives as
    nested starts: keep one span, with the innermost (the real method's) inputs."""
    top = trace._stack[-1] if trace._stack else None
    if top is not None and top.name == name and not top.end_ns:
        trace._set(top, "inputs", inputs)
        trace._by_call[call_id] = None  # its end is the outer call's
        return
    trace.open(name, "PARSER", inputs, call_id=call_id)


def _close_adapter_span(trace, call_id: str, outputs: Any, exception) -> None:
    if call_id in trace._by_call and trace._by_call[call_id] is None:
        del trace._by_call[call_id]
        return
    trace.close_call(call_id, outputs, exception)


class SpanCallback(BaseCallback):
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]):
        trace = current()
        if trace is not None:
            trace.open(f"{type(instance).__name__}.forward", _module_type(instance), _inputs_without_demos(inputs),
                       call_id=call_id)

    def on_module_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None):
        trace = current()
        if trace is not None:
            trace.close_call(call_id, outputs, exception)

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]):
        trace = current()
        if trace is None:
            return
        usage = getattr(getattr(instance, "engine", None), "usage", None)
        if usage is not None and hasattr(usage, "take_last"):
            usage.take_last()  # forget an earlier call's usage: a cache hit makes no backend call
        messages = inputs.get("messages") or [{"role": "user", "content": inputs.get("prompt") or ""}]
        params = {k: v for k, v in (inputs.get("kwargs") or {}).items() if k != "response_format"}
        record = trace.open(f"{type(instance).__name__}.__call__", "CHAT_MODEL", {"messages": messages, **params},
                            call_id=call_id)
        record.attributes["mlflow.llm.model"] = str(getattr(instance, "model", ""))
        record.attributes["_usage"] = usage

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None):
        trace = current()
        if trace is None:
            return
        record = trace._by_call.get(call_id)
        if record is None:
            return
        usage_counter = record.attributes.pop("_usage", None)
        usage = usage_counter.take_last() if usage_counter is not None else None
        if usage:
            record.attributes["mlflow.chat.tokenUsage"] = usage
            for key in ("input_tokens", "output_tokens"):
                trace.usage[key] += usage[key]
        else:
            record.attributes["workbench.cached"] = True
        texts = [o.get("text", o) if isinstance(o, dict) else o for o in (outputs or [])]
        chat = {"choices": [{"index": i, "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)]}
        trace.close_call(call_id, chat if outputs is not None else None, exception)

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]):
        trace = current()
        if trace is not None:
            shown = {"signature": getattr(inputs.get("signature"), "__name__", ""),
                     "demos": inputs.get("demos") or [], "inputs": inputs.get("inputs") or {}}
            _open_adapter_span(trace, f"{type(instance).__name__}.format", shown, call_id)

    def on_adapter_format_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None):
        trace = current()
        if trace is not None:
            _close_adapter_span(trace, call_id, outputs, exception)

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]):
        trace = current()
        if trace is not None:
            _open_adapter_span(trace, f"{type(instance).__name__}.parse", {"completion": inputs.get("completion")},
                               call_id)

    def on_adapter_parse_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None):
        trace = current()
        if trace is not None:
            _close_adapter_span(trace, call_id, outputs, exception)

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]):
        trace = current()
        if trace is not None:
            args = dict(inputs.get("kwargs") or {}) or {k: v for k, v in inputs.items() if k != "args"}
            trace.open(f"Tool.{getattr(instance, 'name', 'tool')}", "TOOL", args, call_id=call_id)

    def on_tool_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None):
        trace = current()
        if trace is not None:
            trace.close_call(call_id, outputs, exception)


_installed: SpanCallback | None = None


def install() -> None:
    """Add the span callback to DSPy's global callbacks once per process (it is idle outside traced examples)."""
    global _installed
    import dspy

    if _installed is None:
        _installed = SpanCallback()
    callbacks = list(dspy.settings.get("callbacks", []) or [])
    if not any(isinstance(c, SpanCallback) for c in callbacks):
        dspy.settings.configure(callbacks=[*callbacks, _installed])
