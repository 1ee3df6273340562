"""`finetune`: weight optimization of the embedded LM, offline, from the program's own prompts.

Training pairs are the exact messages the program sends for each training example with the
answer it should give (workbench.finetune.pairs); a LoRA adapter is trained on the CPU (torch +
PEFT on the base GGUF's weights), written as a llama.cpp GGUF adapter, and the run's LM switches
to it, so the evaluation, later optimizer steps and the exported program all use it. The prompt
is unchanged: combine with `retrieval_demos` or an instruction optimizer in a sequence
(`optimizer: [{name: finetune}, {name: retrieval_demos}]`). `BootstrapFinetune` is an alias
(DSPy's name for the same idea, which needs a provider's fine-tuning API).

An adapter trained on the same pairs, parameters and base model is reused from the cache
folder, as LM responses are; the checkpoints of a killed run let `--resume` continue training.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import time
from typing import Any

from workbench.errors import UserError
from workbench.optimize import CompileContext
from workbench.registry import optimizer

log = logging.getLogger(__name__)


def _embedded_backend(ctx: CompileContext):
    backend = ctx.lm.engine
    if getattr(backend, "path", None) is None or not hasattr(backend, "apply_lora"):
        raise UserError("finetune trains the embedded model's weights: it needs lm.backend embedded",
                        file=ctx.source, field="optimizer.name")
    return backend


@optimizer("finetune")
def finetune(ctx: CompileContext, *, rank: int = 16, alpha: float = 32.0, target_modules: list[str] | None = None,
             learning_rate: float = 1e-3, epochs: float | None = None, max_steps: int | None = None,
             batch_size: int = 16, max_examples: int | None = None, max_minutes: float | None = None,
             source: str = "gold", checkpoint_every: int = 25, seed: int | None = None, precision: str = "auto",
             layers: int | None = None, group_by_length: bool = False):
    """Fine-tune the embedded LM (LoRA, CPU) on the program's own prompts and gold answers.

    `source`: gold (the examples' output fields; no LM calls) or bootstrap (the LM's answers that the
    metric accepts). `max_examples`: train on a seeded sample of the train split. `max_minutes`: stop
    training between steps after this long (the adapter is what was learnt by then). `precision`:
    auto (bfloat16 products where the CPU has them natively), float32 or bfloat16. `layers`: LoRA in the
    top N transformer blocks only (default all); the backward pass stops below them, so steps are faster.
    `group_by_length`: batches of prompts of similar length (less padding, so faster steps where
    lengths vary): each window of 50 batches is cut anew from its pairs sorted by length, in random order.
    """
    from workbench.finetune.gguf_lora import sha256_file, write_adapter
    from workbench.finetune.pairs import build_pairs, pairs_digest
    from workbench.finetune.train import TARGETS, TrainConfig, describe, resolve_precision, train
    from workbench.paths import cache_dir

    backend = _embedded_backend(ctx)
    if ctx.use_lora is None:  # before any work: the adapter could not be used
        raise UserError("finetune needs a run that can switch its LM to the adapter", file=ctx.source,
                        field="optimizer.name")
    if backend.lora is not None:
        raise UserError("the LM already has a LoRA adapter (lm.lora); finetune trains one on the base model",
                        file=ctx.source, field="lm.lora")
    config = TrainConfig(rank=rank, alpha=alpha, target_modules=list(target_modules or TARGETS),
                         learning_rate=learning_rate, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                         max_minutes=max_minutes, seed=ctx.seed if seed is None else seed,
                         checkpoint_every=checkpoint_every, precision=precision, layers=layers,
                         group_by_length=group_by_length)
    examples = list(ctx.trainset)
    if max_examples is not None:
        if not isinstance(max_examples, int) or isinstance(max_examples, bool) or max_examples < 1:
            raise UserError(f"max_examples must be a positive integer, got {max_examples!r}", file=ctx.source,
                            field="optimizer.params.max_examples")
        import random

        examples = random.Random(config.seed).sample(examples, min(max_examples, len(examples)))
    config.check(len(examples), source=ctx.source)  # bad parameters before any work
    meter = getattr(backend, "budget", None)
    if meter is not None and meter.timeout_s is not None:  # a run time budget: train for at most half of what is left
        left_minutes = max(meter.timeout_s - (time.monotonic() - meter.started), 1.2) / 120
        config.max_minutes = min(config.max_minutes or left_minutes, left_minutes)
    status = ctx.status or (lambda _: None)
    started = time.perf_counter()
    skipped: dict[str, int] = {}
    pairs = build_pairs(ctx.student, examples, source=source, metric=ctx.metric, spec_file=ctx.source,
                        progress=lambda done, total: status(f"building training pairs: {done}/{total}"),
                        skipped=skipped)
    weights = [pair.weight for pair in pairs]
    weighed = {"pair_weight_mean": sum(weights) / len(weights)} if any(w != 1.0 for w in weights) else {}
    if weighed:
        log.info("finetune: pairs weighted by the program (mean %.2f, %.2f to %.2f): the heavier come first",
                 weighed["pair_weight_mean"], min(weights), max(weights))
    lost = _describe_skipped(skipped, len(examples))
    if lost:
        log.warning("finetune: %s", lost)
    try:
        config.check(len(pairs), source=ctx.source)
    except UserError as exc:
        raise UserError(f"{exc.message}{f' ({lost})' if lost else ''}", file=exc.file, field=exc.field) from None
    config.precision = resolve_precision(config.precision)  # the adapter's key says what it was trained in
    base_sha = sha256_file(backend.path)
    fingerprint = hashlib.sha256(f"{pairs_digest(pairs)}|{describe(config)}|{base_sha}".encode()).hexdigest()
    cached = cache_dir() / "adapters" / f"{fingerprint[:24]}.gguf"
    if ctx.lm.cache and cached.is_file():
        log.info("LoRA adapter for these pairs and parameters reused from %s", cached)
        status(f"LoRA adapter reused from the cache ({cached.name})")
        # no training in this run: what the run logs says which adapter it took and how it was trained
        ctx.finetune_report = {"pairs": len(pairs), "precision": config.precision, "reused": cached.name}
    else:
        trained = train(pairs, backend.path, config, ctx.checkpoint_dir, fingerprint, status=status, source=ctx.source)
        cached.parent.mkdir(parents=True, exist_ok=True)
        model_config = trained.model.base_model.model.config
        write_adapter(cached, _lora_state(trained.model), alpha=config.alpha, n_head=model_config.num_attention_heads,
                      n_head_kv=model_config.num_key_value_heads, base_sha256=base_sha)
        if trained.stopped:
            log.warning("fine-tuning stopped early: %s", trained.stopped)
        if ctx.checkpoint_dir is not None:  # trained: the adapter replaces the checkpoint
            (ctx.checkpoint_dir / "finetune.pt").unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # only when nothing else keeps checkpoints there
                ctx.checkpoint_dir.rmdir()
        ctx.finetune_report = {"pairs": len(pairs), **{f"skipped_{k}": v for k, v in skipped.items()},
                               "steps": trained.steps, "planned_steps": trained.planned_steps,
                               "final_loss": trained.last_loss, "train_seconds": trained.seconds,
                               "resumed_from_step": trained.resumed_from, "stopped": trained.stopped,
                               "precision": config.precision, **weighed}
    ctx.use_lora(cached, sha256_file(cached))
    log.info("finetune: %d pairs, adapter %s, %.0f s", len(pairs), cached.name, time.perf_counter() - started)
    return ctx.student.deepcopy()


def _describe_skipped(skipped: dict[str, int], total: int) -> str:
    why = {"outside_choices": "whose gold answer is outside the choices its prompt allows (a label outside a "
                              "router's candidates, a call to another function than the one chosen)",
           "failed_metric": "whose answer the metric rejected", "failed_call": "whose LM call or parse failed"}
    parts = [f"{n} {why[reason]}" for reason, n in skipped.items() if n]
    return f"{sum(skipped.values())} of {total} training examples made no pair: {'; '.join(parts)}" if parts else ""


@optimizer("BootstrapFinetune")
def bootstrap_finetune(ctx: CompileContext, **params: Any):
    """DSPy's name for `finetune` with bootstrapped traces (source: bootstrap); same parameters."""
    return finetune(ctx, **{"source": "bootstrap", **params})


# DSPy's name takes exactly finetune's parameters (checked at spec time like any optimizer's)
bootstrap_finetune.accepted_params = sorted(
    name for name, p in inspect.signature(finetune).parameters.items() if p.kind is p.KEYWORD_ONLY)


def _lora_state(model) -> dict[str, Any]:
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model)
