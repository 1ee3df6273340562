"""Does a call fit the LM's context window? Checked before a run starts, without loading a model.

- the embedded model: `lm.n_ctx` within the window the GGUF was trained for (its header's
  `<architecture>.context_length`), and `lm.max_tokens` below `lm.n_ctx` (spec.py);
- an endpoint: `lm.max_tokens` below the window its model list reports, where it reports one
  (vLLM's `max_model_len`, llama.cpp's `meta.n_ctx_train`, `context_length`/`context_window`);
- demos: an optimizer step that puts `k` demos in every prompt, when even a lower estimate of
  that prompt (the train split's mean example length, ~4 characters per token) plus the answer
  is beyond the window.
Each is one `UserError` naming the field and the window.
"""

from __future__ import annotations

import functools
from pathlib import Path

from workbench.errors import UserError

CHARS_PER_TOKEN = 4.0  # English text under a BPE tokenizer: a generous count of characters per token
PROMPT_OVERHEAD_TOKENS = 60  # the instructions, field headers and answer format, at the least
DEMO_PARAMS = ("k", "max_labeled_demos", "max_bootstrapped_demos")


@functools.lru_cache(maxsize=16)
def trained_context(path: Path) -> int | None:
    """The context length a GGUF model was trained for (None: the header does not say)."""
    from workbench.lm.gguf_header import read_header

    try:
        name = read_header(path, {"general.architecture"}).get("general.architecture", "")
        length = read_header(path, {f"{name}.context_length"}).get(f"{name}.context_length")
    except (OSError, ValueError):  # not readable here: the backend reports it when it loads
        return None
    return int(length) if isinstance(length, int) else None


def check_embedded(lm, *, field: str = "lm", source: str = "<spec>") -> None:
    from workbench.lm.models import resolve_model_path

    try:
        path = resolve_model_path(lm.model)
    except Exception:  # noqa: BLE001  an unknown model is reported by the backend, with its own message
        return
    window = trained_context(Path(path))
    if window and lm.n_ctx > window:
        raise UserError(f"n_ctx {lm.n_ctx} is beyond the context window of {Path(path).name} ({window} tokens)",
                        file=source, field=f"{field}.n_ctx")


def endpoint_window(entry: dict) -> int | None:
    """The context window an OpenAI-compatible model list reports for one model, if any."""
    meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
    for value in (entry.get("max_model_len"), entry.get("context_length"), entry.get("context_window"),
                  meta.get("n_ctx"), meta.get("n_ctx_train")):
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_endpoint_window(lm, entry: dict, *, field: str, source: str, base: str) -> None:
    window = endpoint_window(entry)
    if window and lm.max_tokens >= window:
        raise UserError(f"max_tokens {lm.max_tokens} does not fit {lm.model}'s context window at {base} "
                        f"({window} tokens, prompt included)", file=source, field=f"{field}.max_tokens")


def _demo_steps(optimizer) -> list[tuple[str, dict]]:
    """(field path, params) of each optimizer step, a `sequence`'s steps included."""
    params = optimizer.params or {}
    if optimizer.name == "sequence":
        return [(f"optimizer.params.steps[{i}].params", dict(step.get("params") or {}))
                for i, step in enumerate(params.get("steps") or []) if isinstance(step, dict)]
    return [("optimizer.params", dict(params))]


def check_demos_fit(spec, data) -> None:
    """Refuse a demo count whose prompts cannot fit the window even by a low estimate."""
    window = spec.lm.n_ctx if spec.lm.backend == "embedded" else None  # an endpoint's is checked by preflight
    if not window or "train" not in data.splits or len(data.splits["train"]) == 0:
        return
    rows = data.splits["train"].select(range(min(200, len(data.splits["train"])))).to_list()
    fields = [*data.input_fields, data.label_field]
    mean_chars = sum(len(str(row.get(f, ""))) + len(f) + 4 for row in rows for f in fields) / len(rows)
    per_demo = mean_chars / CHARS_PER_TOKEN
    for path, params in _demo_steps(spec.optimizer):
        counts = {k: params[k] for k in DEMO_PARAMS if isinstance(params.get(k), int)}
        if not counts:
            continue
        key, k = max(counts.items(), key=lambda kv: kv[1])
        need = PROMPT_OVERHEAD_TOKENS + (k + 1) * per_demo + spec.lm.max_tokens
        if need > window:
            fits = max(0, int((window - spec.lm.max_tokens - PROMPT_OVERHEAD_TOKENS) / per_demo) - 1)
            raise UserError(f"{k} demos of ~{per_demo:.0f} tokens each need at least ~{need:.0f} tokens with the "
                            f"answer, beyond the context window of {window} (lm.n_ctx); at most ~{fits} fit",
                            file=spec.source, field=f"{path}.{key}")


def check_space_fits(spec, data) -> None:
    """`check_demos_fit` for the spec as written and for both ends of every search range, so a
    sweep whose space reaches a demo count beyond the window is refused before its first trial."""
    from workbench.search import apply
    from workbench.spec import validate

    check_demos_fit(spec, data)
    if spec.search is None:
        return
    base = spec.model_dump(mode="json", exclude={"source", "search"})
    for path, distribution in spec.search.space.items():
        for value in distribution.edges():
            try:
                check_demos_fit(validate(apply(base, {path: value}), spec.source), data)
            except UserError as exc:
                raise UserError(f"with the value {value!r}, {exc.message}", file=spec.source,
                                field=f"search.space.{path}") from None
