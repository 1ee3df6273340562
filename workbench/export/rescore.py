"""Re-score an exported plain prompt through its own `client.py` against the run's LM as an
OpenAI-compatible endpoint, paired with the run's per-example scores inside DSPy.

The endpoint: the embedded model served by `python -m llama_cpp.server` on 127.0.0.1 (same
GGUF file, context size and seed; `repeat_penalty` 1.0 sent per request because the
server's default, 1.1, differs from the in-process default); an `openai` run's own
`api_base` (or `--base-url`); any other backend (the recorded LM) behind
`workbench.lm.backend_server`. An endpoint that does not answer is the user's one-line
error (exit 2); a reply that does not fit the schema scores 0 and is counted.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dspy

from workbench.errors import UserError

SERVER_START_SECONDS = 120


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def llama_server(spec):
    """`llama_cpp.server` over the run's GGUF on a free loopback port; yields (base_url, model, extra_body)."""
    import httpx

    from workbench.lm.models import resolve_model_path

    path = resolve_model_path(spec.lm.model)
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="workbench-llama-server-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", str(spec.lm.n_ctx), "--n_threads", str(os.cpu_count() or 2),
                             "--model_alias", "embedded", "--seed", str(spec.lm.seed)],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if proc.poll() is not None:
                raise UserError(f"llama_cpp.server exited with code {proc.returncode}: "
                                f"{Path(log.name).read_text()[-300:].strip()}", field="lm.model")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise UserError(f"llama_cpp.server did not start within {SERVER_START_SECONDS} s", field="lm.model")
            time.sleep(0.5)
        yield base, "embedded", {"repeat_penalty": 1.0}, "json_object_schema"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        os.unlink(log.name)


@contextlib.contextmanager
def endpoint_for(spec, base_url: str | None):
    """(base_url, model, extra_body, response_format) of the run's LM as an endpoint."""
    if base_url:
        yield base_url, spec.lm.model, None, None
    elif spec.lm.backend == "embedded":
        with llama_server(spec) as served:
            yield served
    elif spec.lm.backend == "openai":
        preflight(spec.lm.api_base)
        yield spec.lm.api_base, spec.lm.model, None, None
    else:
        from workbench.lm import build_backend
        from workbench.lm.backend_server import BackendServer

        with BackendServer(build_backend(spec.lm), model=spec.lm.model) as server:
            yield server.base_url, spec.lm.model, None, "openai_json_schema"


def preflight(url: str) -> None:
    """Fail fast (before any work) when the endpoint does not answer at all."""
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/models", timeout=10)
    except httpx.TransportError as exc:
        raise UserError(f"the endpoint {url} does not answer: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                        field="--base-url") from None


def run_scores(client, run) -> dict[str, float]:
    """The run's per-example scores inside DSPy, by example id (its predictions table)."""
    from workbench.comparison.runs import load_run

    return load_run(client, run).scores().to_dict()


def rescore(prompt, prepared, run, client, reporter, *, base_url: str | None = None) -> dict[str, Any]:
    import httpx

    from workbench.comparison.stats import paired_test
    from workbench.run_parts import metric_fns

    spec, data = prepared.spec, prepared.data
    _, scored, _ = metric_fns(spec)
    inside = run_scores(client, run)
    items = [e for e in prepared.evalset if str(e.get("id", "")) in inside]
    if len(items) != len(prepared.evalset):
        raise UserError(f"run {run.info.run_id[:12]}'s table lacks {len(prepared.evalset) - len(items)} of its "
                        "evaluation items", field="RUN")
    api_key = os.environ.get(spec.lm.api_key_env or "", "") or None
    plain, failures, seconds = [], 0, 0.0
    with endpoint_for(spec, base_url) as (url, model, extra, response_format), httpx.Client(timeout=spec.lm.timeout_s) as http, \
            reporter.progress("scoring the plain prompt through client.py", len(items)) as update:
        for i, example in enumerate(items, 1):
            inputs = {name: example[name] for name in data.input_fields}
            start = time.perf_counter()
            try:
                reply = prompt.call(inputs, base_url=url, model=model, api_key=api_key, client=http,
                                    response_format=response_format, extra_body=extra)
                score = scored(example, dspy.Prediction(**reply))
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                raise UserError(f"the endpoint {url} failed while re-scoring the plain prompt: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}", field="--base-url") from None
            except ValueError:  # the reply did not fit the schema: counted, scores 0
                score, failures = 0.0, failures + 1
            seconds += time.perf_counter() - start
            plain.append(score)
            update(i, sum(plain) / i, i)
    ids = [str(e.get("id", "")) for e in items]
    dspy_scores = [inside[i] for i in ids]
    paired = paired_test(dspy_scores, plain)  # difference = plain - DSPy
    n = len(items)
    return {"metric": spec.metric.name, "n": n, "dspy_score": sum(dspy_scores) / n, "plain_score": sum(plain) / n,
            "difference": paired.difference, "difference_ci": list(paired.ci), "test": paired.test,
            "p_value": paired.p_value, "plain_failures": failures, "client_seconds_per_call": round(seconds / n, 4),
            "endpoint": "llama_cpp.server (embedded model)" if spec.lm.backend == "embedded" and not base_url
            else url, "per_example": [{"id": i, "dspy": d, "plain": p} for i, d, p in zip(ids, dspy_scores, plain)]}
