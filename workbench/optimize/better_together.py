"""`BetterTogether`: prompt and weight optimization alternated, DSPy's name for it, offline.

A strategy such as "p -> w -> p" becomes a sequence: `p` is the prompt optimizer (its demos
and instructions), `w` is `finetune` on the prompts the program has at that point (so the
adapter learns the optimized prompt), and a later `p` optimizes the prompt for the fine-tuned
model. Everything else is the sequence optimizer's: each step on the previous one's program.
"""

from __future__ import annotations

from typing import Any

from workbench.optimize import CompileContext
from workbench.registry import optimizer


def steps(strategy: str, prompt_optimizer: str, prompt_params: dict | None,
          finetune_params: dict | None) -> list[dict[str, Any]]:
    """The sequence's steps, or ValueError naming what is wrong with the strategy."""
    tokens = [t.strip() for t in str(strategy).split("->")]
    if not tokens or any(t not in ("p", "w") for t in tokens):
        raise ValueError(f"strategy is steps p (prompt) and w (weights) joined by ->, e.g. 'p -> w -> p'; "
                         f"got {strategy!r}")
    if tokens.count("w") != 1:
        raise ValueError("strategy needs exactly one w: the adapter is trained once, on the base model")
    if prompt_optimizer in ("finetune", "BootstrapFinetune", "BetterTogether", "sequence"):
        raise ValueError(f"prompt_optimizer must optimize prompts, not {prompt_optimizer!r}")
    return [{"name": prompt_optimizer, "params": dict(prompt_params or {})} if t == "p"
            else {"name": "finetune", "params": dict(finetune_params or {})} for t in tokens]


@optimizer("BetterTogether")
def better_together(ctx: CompileContext, *, strategy: str = "p -> w -> p", prompt_optimizer: str = "BootstrapFewShot",
                    prompt_params: dict | None = None, finetune_params: dict | None = None):
    """Prompt optimization, fine-tuning of the embedded LM on the optimized prompts, and prompt
    optimization again for the tuned model (`strategy`: p and w steps joined by ->)."""
    from workbench.errors import UserError
    from workbench.optimize.sequence import sequence

    try:
        plan = steps(strategy, prompt_optimizer, prompt_params, finetune_params)
    except ValueError as exc:
        raise UserError(str(exc), file=ctx.source, field="optimizer.params.strategy") from None
    return sequence(ctx, steps=plan)
