"""`workbench serve BUNDLE_OR_MODEL_URI`: an exported program behind a small JSON API.

FastAPI + uvicorn rather than MLflow's scoring server: requests are validated against the
program's own input fields (a 422 names the field), bodies are size-capped before they are
read, and `/metadata` returns the bundle's manifest and measured score. MLflow's server
still works for registered models (`mlflow models serve -m models:/NAME@champion`).

- `POST /predict` `{"text": "..."}` -> `{"label": ..., ...}`; 400 malformed JSON, 413 too
  large, 422 missing/unknown/mistyped field, 503 when the queue is full, 500 when the
  program fails (the LM's output did not parse): always `{"error": ..., "field"?: ...}`.
- `GET /health`, `GET /metadata`.
Predictions run in worker threads; the embedded LM serializes its calls, so concurrent
clients queue rather than fail.

Off loopback the server needs a key (`--api-key-env NAME`: `/predict` and `/metadata` then
want `Authorization: Bearer <key>`, compared in constant time; 401 otherwise) or an explicit
`--insecure`. Each client address gets `rate_limit` requests per minute (429 with
Retry-After beyond it); `/health` stays open for load balancers.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from workbench.errors import UserError
from workbench.tracking import default_uri

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 64 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


class ClientLimiter:
    """At most `per_minute` requests per client address in any 60 s window."""

    def __init__(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """0 when the request may go ahead (and is counted), else seconds to wait."""
        if not self.per_minute:
            return 0.0
        now = time.monotonic()
        with self._lock:
            recent = self._seen[client]
            while recent and now - recent[0] >= 60:
                recent.popleft()
            if len(recent) >= self.per_minute:
                return 60 - (now - recent[0])
            recent.append(now)
            return 0.0


def create_app(program, *, max_body_bytes: int = DEFAULT_MAX_BODY, max_waiting: int = 256,
               api_key: str | None = None, rate_limit: float = 0):
    """The FastAPI app serving a `LoadedProgram` (bearer `api_key` and a per-client rate limit optional)."""
    app = FastAPI(title=f"dspy-workbench: {program.manifest.get('program_class', 'program')}",
                  description="An exported dspy-workbench program.", docs_url="/docs", redoc_url=None)
    slots = threading.BoundedSemaphore(max_waiting)
    started = time.time()
    counts = {"requests": 0, "errors": 0, "unauthorized": 0, "rate_limited": 0}
    limiter = ClientLimiter(rate_limit)
    expected = f"Bearer {api_key}".encode() if api_key else None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path == "/health":
            return await call_next(request)
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                counts["unauthorized"] += 1
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        wait = limiter.retry_after(request.client.host if request.client else "?")
        if wait:
            counts["rate_limited"] += 1
            return JSONResponse({"error": f"over {limiter.per_minute:g} requests per minute; retry later"},
                                status_code=429, headers={"Retry-After": str(max(1, round(wait)))})
        return await call_next(request)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "uptime_s": round(time.time() - started, 1), **counts}

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        return program.metadata()

    @app.post("/predict")
    async def predict(request: Request):
        counts["requests"] += 1
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            counts["errors"] += 1
            return _error(413, f"request body over {max_body_bytes} bytes")
        body = b""
        async for chunk in request.stream():  # chunked bodies are capped too
            body += chunk
            if len(body) > max_body_bytes:
                counts["errors"] += 1
                return _error(413, f"request body over {max_body_bytes} bytes")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            counts["errors"] += 1
            return _error(400, f"body is not JSON: {exc}")
        if not isinstance(payload, dict):
            counts["errors"] += 1
            return _error(400, f"body must be a JSON object with the fields {program.inputs}")
        try:
            inputs = program.validate(payload)
        except ValidationError as exc:
            counts["errors"] += 1
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            message = {"missing": "required field is missing", "extra_forbidden": "unknown field"}.get(
                first["type"], first["msg"])
            return _error(422, f"{message} (inputs: {', '.join(program.inputs)})", field)
        if not slots.acquire(blocking=False):
            counts["errors"] += 1
            return _error(503, "too many requests waiting; retry later")
        try:
            start = time.perf_counter()
            outputs = await run_in_threadpool(program.predict, inputs)
            outputs["latency_ms"] = round((time.perf_counter() - start) * 1000, 1)
            return outputs
        except Exception as exc:  # noqa: BLE001  a failed prediction is this request's error, not the server's end
            counts["errors"] += 1
            log.warning("prediction failed: %s: %s", type(exc).__name__, exc)
            return _error(500, f"the program failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
        finally:
            slots.release()

    return app


def resolve_target(target: str, tracking_uri: str) -> Path:
    """A bundle folder, or a `models:/NAME@alias` / `models:/NAME/VERSION` / `runs:/` URI of a
    promoted model, or a run's logged model `models:/m-<id>` (downloaded, then its bundle files are used)."""
    if "://" not in target and ":/" not in target:
        return Path(target)
    import mlflow
    from mlflow.exceptions import MlflowException

    from workbench.tracking import use_store

    use_store(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=target))
    except MlflowException as exc:
        raise UserError(f"cannot fetch the model: {exc.message.splitlines()[0]}", field="BUNDLE_OR_MODEL_URI") from None
    bundle = local if (local / "manifest.json").is_file() else local / "artifacts" / "bundle"  # a logged model's files
    if not (bundle / "manifest.json").is_file():
        raise UserError(f"{target} is not a model promoted by the workbench (no artifacts/bundle)",
                        field="BUNDLE_OR_MODEL_URI")
    return bundle


def serve_key(host: str, api_key_env: str | None, insecure: bool) -> str | None:
    """The bearer key to require; listening beyond loopback needs one (or --insecure)."""
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise UserError(f"environment variable {api_key_env} is not set or empty", field="--api-key-env")
        return key
    if host not in LOOPBACK and not insecure:
        raise UserError(f"listening on {host} makes the server reachable from other machines: give "
                        "--api-key-env NAME (clients send Authorization: Bearer <key>) or --insecure", field="--host")
    return None


def serve(target: str, *, host: str = "127.0.0.1", port: int = 8000, max_body_bytes: int = DEFAULT_MAX_BODY,
          lm_overrides: dict[str, Any] | None = None, tracking_uri: str | None = None,
          api_key_env: str | None = None, insecure: bool = False, rate_limit: float = 600) -> None:
    import uvicorn

    from workbench.export.loaded import load

    if rate_limit < 0:
        raise UserError(f"must be 0 (none) or more, got {rate_limit:g}", field="--rate-limit")
    api_key = serve_key(host, api_key_env, insecure)
    if not 0 < port < 65536:
        raise UserError(f"port must be 1-65535, got {port}", field="--port")
    if max_body_bytes < 64:
        raise UserError(f"must be at least 64, got {max_body_bytes}", field="--max-body-bytes")
    start = time.perf_counter()
    tracking_uri = tracking_uri or default_uri()  # flag > environment > default
    program = load(resolve_target(target, tracking_uri), lm_overrides=lm_overrides)
    report = program.report
    print(f"loaded {program.manifest['program_class']} from {program.path} in {time.perf_counter() - start:.1f} s "
          f"({report.get('metric')} {report.get('score', 0):.3f} on n={report.get('n')}); inputs: {program.inputs}",
          flush=True)
    if host not in LOOPBACK and api_key is None:
        print(f"warning: listening on {host}: reachable from other machines, with no authentication (--insecure)",
              flush=True)
    guard = (f"bearer key from ${api_key_env}" if api_key else "no key") + \
        (f", {rate_limit:g} requests/min per client" if rate_limit else "")
    print(f"serving on http://{host}:{port}  (POST /predict, GET /health, GET /metadata; {guard}; Ctrl-C stops)",
          flush=True)
    uvicorn.run(create_app(program, max_body_bytes=max_body_bytes, api_key=api_key, rate_limit=rate_limit),
                host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
