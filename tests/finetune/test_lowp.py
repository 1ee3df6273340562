"""bfloat16 training steps without their casts (workbench/finetune/lowp.py), on a tiny random Llama:
frozen weights kept in bfloat16 give bit-identical losses and gradients to autocast rounding them
at every product, and the model comes back as it was (float32 weights, its attention kernel)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tests.finetune.test_training import PAIRS, tiny_model  # noqa: E402
from tests.finetune.test_training import tokenizer  # noqa: E402,F401 (module fixture)


def _lora(tokenizer):  # noqa: F811
    from peft import get_peft_model

    from workbench.finetune.train import TrainConfig, lora_config

    model = tiny_model(tokenizer)
    torch.manual_seed(0)
    return get_peft_model(model, lora_config(TrainConfig(rank=4, alpha=8), model.config.num_hidden_layers)).train()


def _step(model, tokenizer):  # noqa: F811
    from workbench.finetune.train import encode, step_loss

    loss, _ = step_loss(model, [encode(tokenizer, p) for p in PAIRS[:6]], tokenizer.pad_token_id or 0, bfloat16=True)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def test_frozen_weights_in_bfloat16_give_the_same_loss_and_gradients_as_autocast_alone(tokenizer):  # noqa: F811
    from workbench.finetune.lowp import bfloat16_steps

    model = _lora(tokenizer)
    model.get_base_model().set_attn_implementation("eager")  # so only the weights' precision differs
    plain = _step(model, tokenizer)
    with bfloat16_steps(model):
        frozen = [m.weight for n, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad and "lm_head" not in n]
        assert frozen and all(w.dtype == torch.bfloat16 for w in frozen)
        fast = _step(model, tokenizer)
    assert fast[0] == plain[0]
    assert fast[1].keys() == plain[1].keys() and len(plain[1]) == 4 * 7  # LoRA A and B, 7 layers, 2 blocks
    assert all(torch.equal(fast[1][k], plain[1][k]) for k in plain[1])


def test_the_model_comes_back_as_it_was_even_when_a_step_fails(tokenizer):  # noqa: F811
    from workbench.finetune.lowp import bfloat16_steps

    model = _lora(tokenizer)
    base = model.get_base_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kernel = base.config._attn_implementation
    assert kernel != "eager"  # transformers' default for Llama (sdpa): the block switches it
    with pytest.raises(RuntimeError, match="boom"), bfloat16_steps(model):
        assert base.config._attn_implementation == "eager"
        raise RuntimeError("boom")
    assert base.config._attn_implementation == kernel
    after = model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    with bfloat16_steps(model, enabled=False):  # float32 training: nothing changes
        assert base.config._attn_implementation == kernel
        assert all(p.dtype == torch.float32 for p in model.parameters())
