"""The contract every LM backend meets, as a DSPy 3.4 custom engine.

A backend turns one `dspy.lm15.Request` into one `dspy.lm15.Response` (DSPy owns caching
and history around it), declares what it supports so DSPy's JSONAdapter sends the output
schema, counts calls and tokens, and maps its own failures to lm15 errors. Every call goes
through the same guard (`workbench.lm.resilience`): the client-side rate limit, retries of
transient failures with backoff, and the breaker that stops a run on a dead endpoint.
`tests/lm/test_backend_contract.py` is the one conformance suite every backend passes.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from dspy.lm15 import Message, Request, Response, TextPart, TransportError, Usage, response_to_events

from workbench.lm.resilience import Breaker, EndpointDown, RateLimiter, RetryPolicy, call_stats, is_transient


@dataclass
class UsageTotals:
    """What reached the model (cache hits never do): calls, tokens, seconds, failures."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    failures: int = 0        # calls that failed after their retries
    retries: int = 0         # extra attempts spent on transient failures
    wait_seconds: float = 0.0  # waiting for the client-side rate limit and for backoff
    requests: int = 0        # every LM call the program made, answered from the response cache or not

    @property
    def cache_hits(self) -> int:
        """Requests the response cache answered (a request that reached the model is a call)."""
        return max(self.requests - self.calls, 0)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class UsageCounter:
    """Thread-safe running totals; `snapshot()`/`since()` measure one phase of a run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = UsageTotals()
        self._local = threading.local()  # this thread's last call (a trace's LM span reads it)

    def add(self, *, input_tokens: int = 0, output_tokens: int = 0, seconds: float = 0.0, failed: bool = False,
            retries: int = 0, wait_seconds: float = 0.0) -> None:
        self._local.last = {"input_tokens": input_tokens, "output_tokens": output_tokens,
                            "total_tokens": input_tokens + output_tokens}
        with self._lock:
            self._totals.calls += 1
            self._totals.input_tokens += input_tokens
            self._totals.output_tokens += output_tokens
            self._totals.seconds += seconds
            self._totals.failures += int(failed)
            self._totals.retries += retries
            self._totals.wait_seconds += wait_seconds

    def take_last(self) -> dict[str, int] | None:
        """The token usage of this thread's last backend call since the previous take (None: none made,
        e.g. the answer came from the cache)."""
        last, self._local.last = getattr(self._local, "last", None), None
        return last

    def request(self) -> None:
        with self._lock:
            self._totals.requests += 1

    def snapshot(self) -> UsageTotals:
        with self._lock:
            return UsageTotals(**asdict(self._totals))

    def since(self, before: UsageTotals) -> UsageTotals:
        now = self.snapshot()
        return UsageTotals(*(getattr(now, f) - getattr(before, f) for f in asdict(now)))


def request_messages(request: Request) -> list[dict[str, str]]:
    """The request as OpenAI-style chat messages (text only: routing/RAG/tools need no more)."""
    messages = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        messages.append({"role": message.role, "content": message.text or ""})
    return messages


def output_schema(request: Request) -> dict[str, Any] | None:
    """The JSON schema the adapter asked for, or {} for "any JSON object", or None."""
    fmt = request.config.response_format
    if not fmt:
        return None
    if fmt.get("type") == "json_schema":
        return dict(fmt["schema"])
    return {}


class Backend:
    """Shared machinery; subclasses implement `_generate(messages, schema, config)`."""

    supports_response_schema = True
    supports_function_calling = False
    supports_reasoning = False
    supported_params = frozenset({"response_format", "temperature", "max_tokens", "stop", "seed"})
    # The model computes in this process (it keeps the CPU busy): the evaluation's traces are then
    # written after it, not beside it (workbench/traces/process.py).
    in_process = False

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.usage = UsageCounter()
        self.retry = RetryPolicy(retries=0)  # remote backends set their own
        self.breaker = Breaker(limit=None)   # the runner sets eval.max_consecutive_lm_errors
        self.limiter = RateLimiter()
        self.budget = None  # the run's workbench.budget.Meter, shared by all its backends (None: unlimited)
        self.price = (0.0, 0.0)  # USD per million (input, output) tokens, set with the budget

    def complete(self, request: Request) -> Response:
        from dspy.clients.engines.base import validate_request

        validate_request(request)
        messages, schema = request_messages(request), output_schema(request)
        if self.budget is not None:
            from workbench.budget import BudgetExhausted

            try:
                self.budget.check()
            except BudgetExhausted as exc:  # not a call: nothing reached the model
                raise TransportError(f"not calling {self.model_id}: {exc}") from None
        start = time.perf_counter()
        retries, waited = 0, 0.0
        while True:
            try:
                self.breaker.check()
            except EndpointDown as exc:  # not a call: nothing reached the model
                raise TransportError(f"not calling {self.model_id}: {exc}") from None
            waited += self.limiter.wait(_estimate_tokens(messages, request.config))
            try:
                text, usage, finish = self._generate(messages, schema, request.config)
                break
            except Exception as exc:
                backoff_left = self.retry.max_seconds - waited
                if not is_transient(exc) or retries >= self.retry.retries or backoff_left <= 0:
                    self.breaker.record(exc)
                    self.usage.add(seconds=time.perf_counter() - start, failed=True, retries=retries,
                                   wait_seconds=waited)
                    call_stats.retries += retries
                    raise
                pause = min(self.retry.delay(retries, getattr(exc, "retry_after", None)), backoff_left)
                retries += 1
                waited += pause
                time.sleep(pause)
        self.breaker.record(None)
        if self.budget is not None:
            self.budget.add(usage.input_tokens or 0, usage.output_tokens or 0, self.price)
        call_stats.retries += retries
        self.usage.add(input_tokens=usage.input_tokens or 0, output_tokens=usage.output_tokens or 0,
                       seconds=time.perf_counter() - start, retries=retries, wait_seconds=waited)
        return Response(id=None, model=self.model_id, message=Message.assistant([TextPart(text)]),
                        finish_reason=finish, usage=usage)

    def stream(self, request: Request):
        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        """Settings safe to log (never a secret)."""
        return {"model_id": self.model_id}

    def _generate(self, messages: list[dict[str, str]], schema: dict[str, Any] | None, config) -> tuple[str, Usage, str]:
        raise NotImplementedError


def _estimate_tokens(messages: list[dict[str, str]], config) -> int:
    """What a call will cost in tokens, before it is made: ~4 characters per prompt token
    plus the completion budget (the rate limiter books this)."""
    return sum(len(m["content"]) for m in messages) // 4 + (config.max_tokens or 256)


def schema_key(schema: dict[str, Any]) -> str:
    """The schema as text, properties in their declared order: llama.cpp's grammar emits them
    in that order, and a function's arguments (or ReAct's tool name before its arguments)
    read best the way they were written."""
    return json.dumps(schema)
