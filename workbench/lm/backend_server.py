"""Any workbench LM backend behind an OpenAI-compatible `/v1/chat/completions` on 127.0.0.1.

The plain-prompt export re-scores its `client.py` against "the run's LM as an endpoint".
For the embedded model that endpoint is `llama_cpp.server`; for a backend with no server of
its own (the recorded LM of the fast tests) it is this one: stdlib only, loopback only,
the request's messages, `response_format` schema and decoding settings passed to the
backend as the workbench itself would.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any


def _schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema")
    if fmt.get("type") == "json_object":
        return fmt.get("schema") or {}
    return None


class BackendServer:
    """`with BackendServer(backend) as server:` serves on `server.base_url` until the block ends."""

    def __init__(self, backend, model: str = "workbench") -> None:
        self.backend, self.model = backend, model
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                    config = SimpleNamespace(temperature=body.get("temperature"), max_tokens=body.get("max_tokens"),
                                             stop=tuple(body.get("stop") or ()), seed=body.get("seed"))
                    text, usage, finish = outer.backend._generate(body["messages"], _schema(body), config)
                except Exception as exc:  # noqa: BLE001 - the client sees a 500 with the reason
                    return self._send(500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
                self._send(200, {"id": "wb", "object": "chat.completion", "model": outer.model,
                                 "choices": [{"index": 0, "finish_reason": "length" if finish == "length" else "stop",
                                              "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": usage.input_tokens or 0,
                                           "completion_tokens": usage.output_tokens or 0}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> BackendServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
