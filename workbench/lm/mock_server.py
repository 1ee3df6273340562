"""A scriptable OpenAI-compatible endpoint on 127.0.0.1, for tests and benchmarks.

`python -m workbench.lm.mock_server --port 8011 --latency 0.2 --faults ok,429,ok,503` serves
`GET /v1/models` and `POST /v1/chat/completions` and misbehaves on request: fixed latency,
a cycled script of faults (`ok`, `429`, `503`, `500`, `408`, `400`, `timeout` = sleeps
past the client's patience, `garbage` = 200 with a body that is not a completion,
`reset` = closes the connection unanswered), a seeded transient-failure rate (drawn from `fail_with`), a
server-side request rate limit (429 with Retry-After), a bearer key, and `down_after=N`
(every call after the N-th is reset). Answers are deterministic: each schema property
gets its first allowed value (an enum's first member, so a router answers its top
candidate), or a short string, so a flaky run and a clean run score the same.

Stdlib only; binds loopback only. Counts what it saw (`stats()`), including the highest
number of requests it was serving at once.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

def _value_for(schema: dict[str, Any]) -> Any:
    """The first value a JSON schema allows (enough for the workbench's output schemas)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _value_for(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        return {name: _value_for(sub) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return "mock answer"


def _answer(body: dict[str, Any]) -> str:
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    if schema:
        return json.dumps(_value_for(schema))
    return json.dumps({"answer": "mock answer"}) if fmt else "mock answer"


class MockEndpoint:
    """The server and its script; `start()` serves in a daemon thread, `stop()` shuts it down."""

    def __init__(self, *, port: int = 0, model: str = "mock-model", latency: float = 0.0,
                 faults: list[str] | None = None, fail_rate: float = 0.0, fail_with: str | list[str] = "503",
                 retry_after: float | None = 0.0, api_key: str | None = None, down_after: int | None = None,
                 max_requests_per_minute: int | None = None, timeout_sleep: float = 3.0, seed: int = 0,
                 max_model_len: int | None = None) -> None:
        self.model = model
        self.max_model_len = max_model_len  # reported in the model list, as vLLM does
        self.latency = latency
        self.faults = list(faults or [])
        self.fail_rate = fail_rate
        self.fail_with = [fail_with] if isinstance(fail_with, str) else list(fail_with)
        self.retry_after = retry_after
        self.api_key = api_key
        self.down_after = down_after
        self.max_requests_per_minute = max_requests_per_minute
        self.timeout_sleep = timeout_sleep
        self._cycle = itertools.cycle(self.faults) if self.faults else None
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self.counts: Counter[str] = Counter()
        self.active = 0
        self.max_active = 0
        self.authorizations: set[str] = set()
        self.times: list[float] = []  # monotonic arrival time of every completion request
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> MockEndpoint:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MockEndpoint:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"counts": dict(self.counts), "completions": self.counts["completion"],
                    "max_active": self.max_active}

    def _fault(self) -> str:
        """What the next completion does (called under the lock)."""
        if self.down_after is not None and self.counts["completion"] > self.down_after:
            return "reset"
        if self.max_requests_per_minute:
            now = time.monotonic()
            while self._recent and now - self._recent[0] > 60:
                self._recent.popleft()
            if len(self._recent) >= self.max_requests_per_minute:
                return "429"
            self._recent.append(now)
        if self._cycle is not None:
            return next(self._cycle)
        if self.fail_rate and self._random.random() < self.fail_rate:
            return self._random.choice(self.fail_with)
        return "ok"

    def _handler(self):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                with endpoint._lock:
                    endpoint.authorizations.add(header)
                if endpoint.api_key is None or header == f"Bearer {endpoint.api_key}":
                    return True
                given = header.removeprefix("Bearer ")  # echoed in full, the worst an API does: clients must mask it
                self._send(401, {"error": {"message": f"Incorrect API key provided: {given}",
                                           "type": "invalid_request_error"}})
                return False

            def do_GET(self) -> None:
                with endpoint._lock:
                    endpoint.counts["models"] += 1
                if not self.path.rstrip("/").endswith("/models"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                elif self._authorized():
                    entry = {"id": endpoint.model, "object": "model"}
                    if endpoint.max_model_len:
                        entry["max_model_len"] = endpoint.max_model_len
                    self._send(200, {"object": "list", "data": [entry]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if not self._authorized():
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                with endpoint._lock:
                    endpoint.counts["completion"] += 1
                    endpoint.times.append(time.monotonic())
                    fault = endpoint._fault()
                    endpoint.counts[fault] += 1
                    endpoint.active += 1
                    endpoint.max_active = max(endpoint.max_active, endpoint.active)
                try:
                    self._respond(body, fault)
                finally:
                    with endpoint._lock:
                        endpoint.active -= 1

            def _respond(self, body: dict[str, Any], fault: str) -> None:
                if endpoint.latency:
                    time.sleep(endpoint.latency)
                retry = {} if endpoint.retry_after is None else {"Retry-After": f"{endpoint.retry_after:g}"}
                if fault == "reset":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "timeout":
                    time.sleep(endpoint.timeout_sleep)
                    self.close_connection = True
                    return
                if fault == "garbage":
                    self._send(200, b"<html>upstream proxy error</html>")
                    return
                if fault.isdigit():
                    self._send(int(fault), {"error": {"message": f"scripted {fault}"}}, retry if fault in ("429", "503") else None)
                    return
                if body.get("model") != endpoint.model:
                    self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist",
                                               "code": "model_not_found"}})
                    return
                text = _answer(body)
                prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
                self._send(200, {"id": "mock", "object": "chat.completion", "model": endpoint.model,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": prompt, "completion_tokens": max(1, len(text) // 4),
                                           "total_tokens": prompt + max(1, len(text) // 4)}})

        return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--model", default="mock-model")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per completion")
    parser.add_argument("--faults", default="", help="cycled script, e.g. ok,429,ok,503")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--api-key-env", help="require this environment variable's value as bearer key")
    args = parser.parse_args(argv)
    import os

    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    server = MockEndpoint(port=args.port, model=args.model, latency=args.latency,
                          faults=[f for f in args.faults.split(",") if f], fail_rate=args.fail_rate, api_key=key)
    print(f"mock endpoint on {server.base_url} (model {args.model})", flush=True)
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
