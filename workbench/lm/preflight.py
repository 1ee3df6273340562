"""One cheap request per distinct endpoint before a run starts.

`GET {api_base}/models` (no tokens spent) says whether the host answers, whether it takes
the key and whether it serves the model; an endpoint without a model list gets a 1-token
completion instead. Whatever is wrong becomes one `UserError` naming `lm.api_base`,
`lm.api_key_env` or `lm.model` (or the same fields of `optimizer.reflection_lm`), so a dead
or misconfigured endpoint is exit 2 before any MLflow run exists, within `deadline` seconds.
Transient answers (429/5xx) are retried inside the deadline. httpx only: no DSPy import.
"""

from __future__ import annotations

import os
import time
from typing import Any

from workbench.errors import UserError
from workbench.lm.resilience import mask_secret

DEADLINE_S = 8.0
_passed: set[tuple] = set()  # endpoints that passed in this process (sweeps run many trials)


def _lms(spec) -> list[tuple[str, Any]]:
    found = [("lm", spec.lm)]
    if spec.optimizer.reflection_lm is not None:
        found.append(("optimizer.reflection_lm", spec.optimizer.reflection_lm))
    seen, out = set(_passed), []
    for field, lm in found:
        key = (lm.backend, lm.api_base, lm.model, lm.api_key_env)
        if lm.backend == "openai" and lm.preflight and key not in seen:
            seen.add(key)
            out.append((field, lm))
    return out


def preflight(spec, *, deadline: float = DEADLINE_S) -> list[str]:
    """Check every endpoint the spec uses (once per process); one line per endpoint checked."""
    from workbench.lm.window import check_embedded

    for field, lm in [("lm", spec.lm), ("optimizer.reflection_lm", spec.optimizer.reflection_lm)]:
        if lm is not None and lm.backend == "embedded":
            check_embedded(lm, field=field, source=spec.source)
    lines = []
    for field, lm in _lms(spec):
        lines.append(check_endpoint(lm, field=field, source=spec.source, deadline=deadline))
        _passed.add((lm.backend, lm.api_base, lm.model, lm.api_key_env))
    return lines


def check_endpoint(lm, *, field: str = "lm", source: str = "<spec>", deadline: float = DEADLINE_S) -> str:
    import httpx

    base = (lm.api_base or "").rstrip("/")
    key = os.environ.get(lm.api_key_env) if lm.api_key_env else None
    if lm.api_key_env and key is None:
        raise UserError(f"environment variable {lm.api_key_env} is not set", file=source, field=f"{field}.api_key_env")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    stop = time.monotonic() + deadline

    def fail(where: str, message: str) -> UserError:
        return UserError(mask_secret(message, key), file=source, field=f"{field}.{where}")

    def request(method: str, path: str, **kwargs) -> httpx.Response:
        attempt = 0
        while True:
            left = stop - time.monotonic()
            try:
                reply = httpx.request(method, base + path, headers=headers, timeout=max(0.5, min(5.0, left)), **kwargs)
            except httpx.TimeoutException:
                raise fail("api_base", f"{base} did not answer the preflight within {min(5.0, left):.0f} s") from None
            except httpx.HTTPError as exc:
                raise fail("api_base", f"cannot reach {base}: {type(exc).__name__}: {exc}") from None
            transient = reply.status_code in (408, 429) or reply.status_code >= 500
            if not transient or time.monotonic() + 0.5 * 2 ** attempt > stop:
                return reply
            time.sleep(0.25 * 2 ** attempt)
            attempt += 1

    def refused(reply: httpx.Response) -> UserError:
        if lm.api_key_env:
            return fail("api_key_env", f"{base} rejected the key in ${lm.api_key_env} ({reply.status_code})")
        return fail("api_key_env", f"{base} needs a key ({reply.status_code}): name the environment variable "
                                   "holding it in lm.api_key_env")

    reply = request("GET", "/models")
    if reply.status_code in (401, 403):
        raise refused(reply)
    if reply.status_code == 200:
        try:
            entries = {str(m.get("id")): m for m in reply.json().get("data", []) if isinstance(m, dict)}
        except (ValueError, AttributeError):
            entries = {}
        served = list(entries)
        if served:
            if lm.model not in served:
                listed = ", ".join(served[:8]) + (" ..." if len(served) > 8 else "")
                raise fail("model", f"{base} does not serve model {lm.model!r} (it serves: {listed})")
            from workbench.lm.window import check_endpoint_window

            check_endpoint_window(lm, entries[lm.model], field=field, source=source, base=base)
            return f"{base}: model {lm.model} served"
    elif reply.status_code >= 500 or reply.status_code == 429:
        raise fail("api_base", f"{base} answered {reply.status_code} to the preflight for {deadline:.0f} s")
    # No usable model list: a 1-token completion says the rest.
    reply = request("POST", "/chat/completions",
                    json={"model": lm.model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})
    if reply.status_code in (401, 403):
        raise refused(reply)
    if reply.status_code == 404 or (reply.status_code == 400 and "model" in reply.text.lower()):
        raise fail("model", f"{base} does not serve model {lm.model!r} ({reply.status_code}: {reply.text[:200]})")
    if reply.status_code >= 400:
        where = "api_base" if reply.status_code >= 500 or reply.status_code == 429 else "model"
        raise fail(where, f"{base} answered the preflight completion with {reply.status_code}: {reply.text[:200]}")
    return f"{base}: model {lm.model} answered"
