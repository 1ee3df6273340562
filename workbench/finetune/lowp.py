"""Training steps in bfloat16 without paying for the casts: measured on a BANKING77 hint batch (8 prompts
of ~148 tokens, 2-core Xeon with AMX), a step under autocast alone spent a fifth of its time converting
tensors to bfloat16 (the frozen weights again at every use) and another fifth in the CPU's fused
attention kernel's backward pass, which is slow for such short sequences.

`bfloat16_steps(model)` keeps the frozen base weights of the linear layers in bfloat16 for the
duration (autocast would round them to the same values at every product, so the loss and gradients
are bit-identical) and computes attention as plain products (the "eager" implementation, whose
results differ only by rounding). On exit the float32 weights and the attention implementation
come back, so evaluation and export see the model as loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _frozen_linears(model: Any) -> list[Any]:
    """The frozen linear layers inside the transformer blocks (not the vocabulary projection: its weight
    is the embeddings' too, and a bfloat16 copy would put the residual stream in bfloat16)."""
    import torch

    return [module for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad
            and module.weight.dtype == torch.float32 and "lm_head" not in name]


@contextmanager
def bfloat16_steps(model: Any, enabled: bool = True) -> Iterator[None]:
    """Within this block, training steps under bfloat16 autocast run faster (see the module's doc)."""
    if not enabled:
        yield
        return
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    linears = _frozen_linears(model)
    originals = [module.weight.data for module in linears]
    attention = getattr(base.config, "_attn_implementation", None)
    try:
        for module, weight in zip(linears, originals):
            module.weight.data = weight.to(torch.bfloat16)
        if attention not in (None, "eager"):
            base.set_attn_implementation("eager")
        yield
    finally:
        for module, weight in zip(linears, originals):
            module.weight.data = weight
        if attention not in (None, "eager"):
            base.set_attn_implementation(attention)
