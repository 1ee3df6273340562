"""Any OpenAI-compatible chat endpoint (llama.cpp server, vLLM, OpenAI) as a DSPy engine.

Capabilities are declared by the spec (`lm.response_format`), not guessed from a model
catalogue that does not know a local server. The declaration also picks the wire dialect:
OpenAI's `json_schema` (OpenAI, vLLM, llama.cpp's server) or `json_object` + `schema`
(llama-cpp-python's server); either way the server decodes under the output schema.
Keys are read from the environment variable the spec names; they are never logged, and
an endpoint's error text that echoes the key has it masked before anyone sees it.
Transient failures (429, 5xx, 408/409, timeouts, dropped connections, a reply that is not a
completion) are marked so `Backend.complete` retries them, with the server's Retry-After.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from dspy.lm15 import AuthError, InvalidRequestError, RateLimitError, ServerError, TimeoutError, TransportError, Usage

from workbench.lm.base import Backend
from workbench.lm.resilience import RetryPolicy, mask_secret, shared_limiter
from workbench.registry import lm_backend


def _retry_after(reply: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare from LM servers: treated as absent)."""
    value = reply.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class OpenAICompatBackend(Backend):
    """POST /chat/completions to `api_base`; retried, rate-limited and guarded by `Backend`."""

    def __init__(self, model: str, api_base: str, *, api_key_env: str | None = None,
                 response_format: str = "openai_json_schema", timeout_s: float = 120.0, seed: int = 0,
                 retries: int = 5, retry_max_seconds: float = 60.0, max_requests_per_minute: float | None = None,
                 max_tokens_per_minute: float | None = None) -> None:
        super().__init__(f"openai-compat/{model}@{api_base.rstrip('/')}")
        self.model = model
        self.api_base = api_base.rstrip("/")
        self.api_key_env = api_key_env
        self.response_format = response_format
        self.supports_response_schema = response_format in ("openai_json_schema", "json_object_schema")
        if response_format == "none":
            self.supported_params = Backend.supported_params - {"response_format"}
        self.timeout_s = timeout_s
        self.seed = seed
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        self._secret = key or None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.retry = RetryPolicy(retries=retries, max_seconds=retry_max_seconds)
        self.limiter = shared_limiter((self.api_base, model), max_requests_per_minute, max_tokens_per_minute)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self._client = httpx.Client(base_url=self.api_base, headers=headers, timeout=timeout_s, limits=limits)

    def redact(self, text: str) -> str:
        """The text with the key masked (some endpoints echo the key they rejected)."""
        return mask_secret(text, self._secret)

    def describe(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "backend": "openai", "model": self.model, "api_base": self.api_base,
                "api_key_env": self.api_key_env or "", "response_format": self.response_format}

    def close(self) -> None:
        self._client.close()

    def _body(self, messages, schema, config) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": config.temperature if config.temperature is not None else 0.0,
            "max_tokens": config.max_tokens or 256,
            "seed": config.seed if config.seed is not None else self.seed,
        }
        if config.stop:
            body["stop"] = list(config.stop)
        if schema and self.response_format == "openai_json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": schema, "strict": True}}
        elif schema and self.response_format == "json_object_schema":
            body["response_format"] = {"type": "json_object", "schema": schema}
        elif schema is not None and self.response_format != "none":
            body["response_format"] = {"type": "json_object"}
        return body

    def _generate(self, messages, schema, config):
        try:
            reply = self._client.post("/chat/completions", json=self._body(messages, schema, config))
        except httpx.TimeoutException:
            raise TimeoutError(f"{self.api_base} did not answer within {self.timeout_s}s") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"{self.api_base}: {type(exc).__name__}: {self.redact(str(exc))}") from None
        if reply.status_code >= 400:
            kind = {401: AuthError, 403: AuthError, 429: RateLimitError}.get(reply.status_code)
            kind = kind or (ServerError if reply.status_code >= 500 else InvalidRequestError)
            error = kind(f"{self.api_base} answered {reply.status_code}: {self.redact(reply.text[:300])}")
            error.status = reply.status_code
            error.retry_after = _retry_after(reply)
            raise error
        try:
            data = reply.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise ServerError(f"{self.api_base} sent a reply that is not a chat completion "
                              f"(status {reply.status_code}, {len(reply.content)} bytes)") from None
        usage = data.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return text, Usage(input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens")), finish


@lm_backend("openai")
def openai(spec, source: str = "<spec>") -> OpenAICompatBackend:
    """Any OpenAI-compatible chat completions endpoint (llama.cpp server, vLLM, OpenAI, ...)."""
    import os

    from workbench.errors import UserError

    if spec.api_key_env and spec.api_key_env not in os.environ:
        raise UserError(f"environment variable {spec.api_key_env} is not set", file=source, field="lm.api_key_env")
    return OpenAICompatBackend(spec.model, spec.api_base or "", api_key_env=spec.api_key_env,
                               response_format=spec.response_format, timeout_s=spec.timeout_s, seed=spec.seed,
                               retries=spec.retries, retry_max_seconds=spec.retry_max_seconds,
                               max_requests_per_minute=spec.max_requests_per_minute,
                               max_tokens_per_minute=spec.max_tokens_per_minute)
