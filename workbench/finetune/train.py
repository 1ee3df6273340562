"""LoRA training on the CPU: torch + PEFT on the base GGUF's weights, dequantized by transformers.

Seeded (the same pairs and parameters give the same adapter on one machine, unless `max_minutes` cuts
the plan short: then the steps done and the rate depend on the clock), loss on the answer tokens only
(the prompt prefix a batch's rows share run once for all of them; matrix products in bfloat16 where
the CPU has them natively, see `precision`; LoRA in the top 10 of 30 blocks only, `layers: 10`, about halves a step: the
backward pass stops below them),
AdamW with a short warm-up and linear decay (to the end of the planned steps, or of `max_minutes`
when the pace after the warm-up says the plan will not fit in it), a checkpoint every `checkpoint_every` steps
(written next to the previous one, then swapped in, so a full disk or a kill leaves the last good
one), and a resume from it when the same pairs and parameters come back. `max_minutes` stops
training between steps (counted over resumes too); the adapter is what was learnt by then.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from workbench.errors import RunFailed, UserError
from workbench.finetune.base_model import load_base
from workbench.finetune.lowp import bfloat16_steps

if TYPE_CHECKING:  # spec checks import this module: no DSPy, no torch at import
    from workbench.finetune.pairs import Pair

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "bfloat16")
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainingFailed(RunFailed):
    """Training broke down mid-way (the last checkpoint is kept)."""


@dataclass
class TrainConfig:
    rank: int = 16
    alpha: float = 32.0
    target_modules: list[str] = field(default_factory=lambda: list(TARGETS))
    learning_rate: float = 1e-3
    epochs: float | None = None  # passes over the pairs (default 1, unless max_steps is set)
    max_steps: int | None = None
    batch_size: int = 16
    max_minutes: float | None = None
    seed: int = 0
    checkpoint_every: int = 25
    # the matrix products of training in bfloat16 (weights, gradients and optimizer stay float32):
    # auto = where the CPU multiplies bfloat16 natively (AVX512-BF16, AMX); elsewhere it is slower
    precision: str = "auto"
    # LoRA in the top `layers` transformer blocks only (None: all): the backward pass stops below them
    layers: int | None = None
    # batches of prompts of similar length (less padding: see _batches)
    group_by_length: bool = False

    def check(self, n_pairs: int, *, source: str = "<spec>") -> int:
        """Bad parameters as one line each; returns the number of optimizer steps planned."""
        def bad(name: str, message: str) -> UserError:
            return UserError(message, file=source, field=f"optimizer.params.{name}")

        for name in ("rank", "batch_size", "checkpoint_every", "layers"):
            value = getattr(self, name)
            if name == "layers" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, f"{name} must be a positive integer, got {value!r}")
        for name in ("alpha", "learning_rate", "epochs"):
            value = getattr(self, name)
            if name == "epochs" and value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise bad(name, f"{name} must be a positive number, got {value!r}")
        if self.max_minutes is not None and (not isinstance(self.max_minutes, (int, float)) or self.max_minutes <= 0):
            raise bad("max_minutes", f"max_minutes must be a positive number, got {self.max_minutes!r}")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.group_by_length, bool):
            raise bad("group_by_length", f"group_by_length must be true or false, got {self.group_by_length!r}")
        unknown = sorted(set(self.target_modules) - set(TARGETS))
        if unknown or not self.target_modules:
            raise bad("target_modules", f"unknown target modules {unknown} (known: {', '.join(TARGETS)})")
        if n_pairs < self.batch_size:
            raise bad("batch_size", f"{n_pairs} training examples are fewer than one batch of {self.batch_size}")
        if self.max_steps is not None:
            if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or self.max_steps < 1:
                raise bad("max_steps", f"max_steps must be a positive integer (a budget of zero steps trains "
                                       f"nothing), got {self.max_steps!r}")
        # the pairs are cycled when max_steps asks for more than one pass; epochs and max_steps: the fewer steps
        steps = int((self.epochs or 1.0) * n_pairs) // self.batch_size if self.epochs or not self.max_steps else None
        steps = min(s for s in (steps, self.max_steps) if s is not None)
        if steps < 1:
            raise bad("epochs", f"epochs {self.epochs} of {n_pairs} pairs is less than one batch: zero steps")
        return steps


def resolve_precision(precision: str) -> str:
    """`auto` as what this CPU will use: bfloat16 where it has native bfloat16 products (a routing
    step took 3.8 s instead of 5.2 on AVX512-BF16), float32 elsewhere."""
    if precision != "auto":
        return precision
    import torch

    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bfloat16" if native else "float32"


def encode(tokenizer, pair: Pair) -> tuple[list[int], int]:
    """Token ids of prompt + answer + end-of-turn, and where the answer starts."""
    prompt = tokenizer.apply_chat_template(pair.messages, add_generation_prompt=True, tokenize=True)
    if isinstance(prompt, dict) or hasattr(prompt, "input_ids"):
        prompt = prompt["input_ids"]
    answer = tokenizer(pair.answer + (tokenizer.eos_token or ""), add_special_tokens=False)["input_ids"]
    return list(prompt) + list(answer), len(prompt)


GROUP_WINDOW = 50  # batches whose pairs are regrouped by length together


def _batches(n: int, batch_size: int, seed: int, steps: int, weights: list[float] | None = None,
             lengths: list[int] | None = None) -> list[list[int]]:
    """The whole schedule of batches, fixed by the seed (so a resumed run sees the same ones). Every
    pass shows every pair once; with `weights`, a pass is a weighted random order (each pair's key is
    u ** (1 / weight), largest first), so a pair of weight 4 tends to come early and a training run
    stopped by its time budget part-way through its first pass has seen more heavy pairs than their share.
    With `lengths` (tokens per pair), each run of GROUP_WINDOW batches in that order is cut anew from
    its pairs sorted by length and shown in a random order: rows of a batch are padded to its longest,
    so similar lengths waste less (a random BANKING77 batch is ~19% padding); the order stays random
    at the scale of a window."""
    rng = random.Random(seed)
    order: list[int] = []
    weighted = weights is not None and any(w != 1.0 for w in weights)
    while len(order) < steps * batch_size:
        epoch = list(range(n))
        if weighted:
            keys = [rng.random() ** (1.0 / weights[i]) for i in epoch]
            epoch.sort(key=lambda i: -keys[i])
        else:
            rng.shuffle(epoch)
        order.extend(epoch)
    batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(steps)]
    if lengths is None:
        return batches
    grouped: list[list[int]] = []
    for w in range(0, steps, GROUP_WINDOW):
        window = sorted((i for batch in batches[w:w + GROUP_WINDOW] for i in batch), key=lambda i: lengths[i])
        cut = [window[b:b + batch_size] for b in range(0, len(window), batch_size)]
        rng.shuffle(cut)
        grouped.extend(cut)
    return grouped


def _shared_prefix(encoded: list[tuple[list[int], int]]) -> int:
    """How many leading tokens every sequence of the batch has in common (the chat template, the
    program's instructions and field descriptions), leaving each at least one prompt token of its own."""
    common = len(os.path.commonprefix([ids for ids, _ in encoded]))
    return max(0, min(common, min(start for _, start in encoded) - 1))


SHARED_MIN = 8  # a shorter common prefix is not worth a forward pass of its own


def _collate(encoded: list[tuple[list[int], int]], pad_id: int, *, share: bool = True):
    """Left-padded ids, attention mask, position ids, labels (-100 outside the answers) and the
    prefix all rows share (or None). The prefix is run once per batch instead of once per row, its
    keys and values repeated for the rows: 585 of a BANKING77 prompt's ~603 tokens (its 77 labels
    are in the system message), so 8 rows cost ~730 tokens instead of ~4,800; 37 of a CLINC150 domain
    prompt's ~93. Left padding puts every answer at the end, so only the last positions need the
    vocabulary projection (a fifth of the model's compute here)."""
    import torch

    shared = _shared_prefix(encoded) if share and len(encoded) > 1 else 0
    shared = shared if shared >= SHARED_MIN else 0
    rows = [(tokens[shared:], start - shared) for tokens, start in encoded]
    width = max(len(tokens) for tokens, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (tokens, start) in enumerate(rows):
        offset = width - len(tokens)
        ids[row, offset:] = torch.tensor(tokens)
        labels[row, offset + start:] = torch.tensor(tokens[start:])
        mask[row, offset:] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0) + shared
    prefix = torch.tensor([encoded[0][0][:shared]], dtype=torch.long) if shared else None
    return ids, mask, positions, labels, prefix


def batch_loss(model, batch, *, reduction: str = "mean"):
    """Cross-entropy of the answer tokens, computing logits for the answer window only."""
    import torch

    ids, mask, positions, labels, prefix = batch
    answer = int((labels != -100).sum(dim=1).max())
    shared = {}
    if prefix is not None:  # the common prefix once; gradients reach it through its keys and values
        cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).cache
        cache.batch_repeat_interleave(ids.shape[0])
        mask = torch.cat([mask.new_ones((ids.shape[0], prefix.shape[1])), mask], dim=1)
        shared = {"cache": cache, "use_cache": True}
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=answer + 1, **shared)
    logits = out.logits[:, :-1]
    target = labels[:, ids.shape[1] - answer:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100, reduction=reduction), int((target != -100).sum())


def step_loss(model, rows: list[tuple[list[int], int]], pad_id: int, *, bfloat16: bool = False, share: bool = True):
    """One training batch's loss as `train` computes it (benchmarks/training_speed.py times this)."""
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        return batch_loss(model, _collate(rows, pad_id, share=share))


def answer_loss(model, tokenizer, pairs: list[Pair], batch_size: int = 16) -> float:
    """Mean loss per answer token on `pairs` (the held-out measure of what training learnt)."""
    import torch

    encoded = [encode(tokenizer, p) for p in pairs]
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            loss, tokens = batch_loss(model, _collate(encoded[i:i + batch_size], tokenizer.pad_token_id or 0),
                                      reduction="sum")
            total += float(loss)
            count += tokens
    return total / max(count, 1)


@dataclass
class Trained:
    model: Any  # the PEFT model
    tokenizer: Any
    steps: int
    planned_steps: int
    last_loss: float
    seconds: float
    resumed_from: int = 0
    stopped: str = ""  # why training ended before its planned steps (max_minutes)


def train(pairs: list[Pair], gguf_path: Path | None, config: TrainConfig, checkpoint_dir: Path | None,
          fingerprint: str, *, status: Callable[[str], None] | None = None, source: str = "<spec>",
          base: tuple[Any, Any] | None = None) -> Trained:
    """Train a LoRA adapter on `pairs`; resume from `checkpoint_dir` when its fingerprint matches.
    `base`: an already loaded (tokenizer, model) instead of the GGUF file's."""
    planned = config.check(len(pairs), source=source)
    import torch
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    torch.set_num_threads(os.cpu_count() or 2)
    # PEFT/transformers deprecation notes about checkpointing and the base's config: not the user's to act on
    warnings.filterwarnings("ignore", message=".*(gradient_checkpointing|activation_checkpointing).*")
    warnings.filterwarnings("ignore", message="Could not find a config file")
    tokenizer, base = base or load_base(gguf_path)
    torch.manual_seed(config.seed)  # after loading: the saved copy's load draws random numbers, the GGUF's does not
    model = get_peft_model(base, lora_config(config, base.config.num_hidden_layers, source))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    budget_s = config.max_minutes * 60 if config.max_minutes is not None else None
    low_precision = resolve_precision(config.precision) == "bfloat16"
    encoded = [encode(tokenizer, p) for p in pairs]
    batches = _batches(len(encoded), config.batch_size, config.seed, planned, [p.weight for p in pairs],
                       [len(ids) for ids, _ in encoded] if config.group_by_length else None)
    start_step, spent = 0, 0.0
    ckpt = checkpoint_dir / "finetune.pt" if checkpoint_dir is not None else None
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        if saved.get("fingerprint") == fingerprint:
            set_peft_model_state_dict(model, saved["lora"])
            optimizer.load_state_dict(saved["optimizer"])
            torch.set_rng_state(saved["rng"])
            start_step = int(saved["step"])
            spent = float(saved.get("elapsed", 0.0))  # the time budget is for the whole training
            log.info("resuming fine-tuning at step %d of %d from %s", start_step, planned, ckpt)
    model.train()
    began, loss_value, stopped = time.perf_counter() - spent, float("nan"), ""
    # whether the rate follows the clock: decided once, after the warm-up, from the pace so far, so a
    # plan that fits the budget is scheduled by steps alone and the same seed gives the same adapter
    clock_bound: bool | None = None if budget_s is not None else False
    step = start_step
    with bfloat16_steps(model, low_precision):  # a bfloat16 step without its casts (see lowp.py)
        for step in range(start_step, planned):
            elapsed = time.perf_counter() - began
            if budget_s is not None and elapsed > budget_s:
                stopped = f"max_minutes {config.max_minutes} reached after {step} of {planned} steps"
                break
            if clock_bound is None and step > start_step and step >= warmup_steps(planned):
                pace = (elapsed - spent) / (step - start_step)  # seconds per step in this process
                projected = elapsed + pace * (planned - step)
                clock_bound = projected > 0.9 * budget_s
                if clock_bound:
                    log.info("at %.1f s per step the %d planned steps need about %.0f of the %.0f budgeted "
                             "minutes: the learning rate decays with the clock", pace, planned, projected / 60,
                             config.max_minutes)
            rate = config.learning_rate * lr_factor(step, planned, elapsed / budget_s if clock_bound else 0.0)
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss, _ = step_loss(model, [encoded[i] for i in batches[step]], tokenizer.pad_token_id or 0,
                                bfloat16=low_precision)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = loss.item()
            done = step + 1
            elapsed = time.perf_counter() - began
            eta = (elapsed - spent) / (done - start_step) * (planned - done)
            if budget_s is not None:
                eta = min(eta, max(budget_s - elapsed, 0.0))
            message = (f"training LoRA: step {done}/{planned} · loss {loss_value:.3f} · lr {rate:.1e} · "
                       f"eta {eta / 60:.1f} min")
            if status:
                status(message)
            if done % 10 == 0 or done == planned:
                log.info(message)
            if ckpt is not None and (done % config.checkpoint_every == 0) and done < planned:
                _save(ckpt, {"fingerprint": fingerprint, "lora": get_peft_model_state_dict(model),
                             "optimizer": optimizer.state_dict(), "elapsed": elapsed,
                             "rng": torch.get_rng_state(), "step": done, "config": asdict(config)})
        else:
            step = planned
    model.eval()
    return Trained(model, tokenizer, step, planned, loss_value, time.perf_counter() - began, start_step, stopped)


def lora_config(config: TrainConfig, n_layers: int, source: str = "<spec>"):
    """PEFT's LoRA configuration for `config` on a base model of `n_layers` transformer blocks."""
    from peft import LoraConfig

    top = None
    if config.layers is not None:
        if config.layers > n_layers:
            raise UserError(f"layers {config.layers} exceeds the base model's {n_layers} transformer blocks",
                            file=source, field="optimizer.params.layers")
        top = list(range(n_layers - config.layers, n_layers))
    return LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=0.0, bias="none",
                      target_modules=list(config.target_modules), layers_to_transform=top, task_type="CAUSAL_LM")


def warmup_steps(planned: int) -> int:
    return max(1, planned // 20)


def lr_factor(step: int, planned: int, time_used: float = 0.0) -> float:
    """The learning rate at `step` as a fraction of the configured one: a linear warm-up over the
    first 5% of the planned steps, then a linear decay to zero at the end of the plan, or at the end
    of the time budget (`time_used`: the fraction of `max_minutes` spent; `train` passes it only when
    the plan will not fit) if that comes first. A run that `max_minutes` stops ends at a low rate
    instead of mid-schedule."""
    warmup = warmup_steps(planned)
    if step < warmup:
        return (step + 1) / warmup
    by_steps = (step - warmup) / max(planned - warmup, 1)
    return max(0.0, 1.0 - max(by_steps, time_used))


def _save(path: Path, state: dict) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(state, tmp)
        tmp.replace(path)
    except (OSError, RuntimeError) as exc:  # a full disk: keep the previous checkpoint, fail the run
        tmp.unlink(missing_ok=True)
        raise TrainingFailed(f"could not write the fine-tuning checkpoint {path} at step {state['step']} ({exc}); "
                             "the previous checkpoint is kept: free disk space and --resume the run") from None


def describe(config: TrainConfig) -> str:
    """The parameters as they key an adapter (`layers` and `group_by_length` only when set, so adapters
    trained before they existed keep their keys)."""
    described = asdict(config)
    for name, unset in (("layers", None), ("group_by_length", False)):
        if described[name] == unset:
            del described[name]
    return json.dumps(described, sort_keys=True)
