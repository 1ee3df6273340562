"""The one place a spec's `lm:` becomes a backend and a `dspy.LM` (and DSPy's cache is set up)."""

from __future__ import annotations

import os
from pathlib import Path

import dspy

from workbench.lm.base import Backend
from workbench.paths import cache_dir
from workbench.spec import LMSpec

__all__ = ["build_backend", "build_lm", "configure_cache"]

_cache_configured: str | None = None


def configure_cache() -> str:
    """Put DSPy's response cache on disk under the project (.cache/dspy), once per process."""
    global _cache_configured
    folder = str(cache_dir() / "dspy")
    if _cache_configured != folder:
        os.makedirs(folder, exist_ok=True)
        from workbench.cache import hold_shared_lock

        hold_shared_lock(Path(folder))  # `workbench cache clear` waits for no one and deletes nothing while held
        dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=folder,
                             restrict_pickle=True)
        _cache_configured = folder
    return folder


def build_backend(spec: LMSpec, *, source: str = "<spec>") -> Backend:
    backend = _backend(spec, source)
    record_to = os.environ.get("WORKBENCH_RECORD_LM")
    if record_to:  # keep what this backend answers, for the recorded backend to replay
        from workbench.lm.recorded import Recorder

        Recorder(backend, record_to)
    return backend


def _backend(spec: LMSpec, source: str) -> Backend:
    from workbench import registry

    return registry.lm_backends.get(spec.backend, file=source, field="lm.backend")(spec, source)


class CountingLM(dspy.LM):
    """A `dspy.LM` that counts every request on its backend's usage, cache hits included
    (the backend itself only sees the misses): the run's cache hit rate."""

    def __call__(self, *args, **kwargs):
        self.engine.usage.request()
        return super().__call__(*args, **kwargs)

    async def acall(self, *args, **kwargs):
        self.engine.usage.request()
        return await super().acall(*args, **kwargs)


def build_lm(spec: LMSpec, *, source: str = "<spec>", backend: Backend | None = None) -> dspy.LM:
    """A `dspy.LM` whose engine is our backend; the backend stays reachable as `lm.engine`."""
    if spec.cache:
        configure_cache()
    backend = backend or build_backend(spec, source=source)
    # Retries live in the backend (counted, with Retry-After); DSPy must not retry on top.
    return CountingLM(backend.model_id, engine=backend, cache=spec.cache, temperature=spec.temperature,
                   max_tokens=spec.max_tokens, num_retries=0)
