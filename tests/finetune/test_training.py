"""The training loop on a tiny random Llama (the embedded model's tokenizer and chat template,
two layers of width 32): the answer-window loss equals the plain one, training is seeded,
lowers the loss, and a run killed mid-way resumes from its checkpoint to the same weights."""

from __future__ import annotations

import pytest

from workbench.errors import UserError
from workbench.finetune.pairs import Pair

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from workbench.lm.models import resolve_model_path

    path = resolve_model_path("smollm2-135m-instruct")
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def tiny_model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    model.config.use_cache = False
    return model


LABELS = ["banking", "travel", "kitchen_and_dining", "work"]
PAIRS = [Pair([{"role": "system", "content": "Route the message."},
               {"role": "user", "content": f"text: message number {i} about {LABELS[i % 4]}" + " more" * (i % 3)}],
              '{"label": "%s"}' % LABELS[i % 4]) for i in range(24)]


def test_the_answer_window_loss_equals_the_loss_over_whole_unpadded_sequences(tokenizer):
    from workbench.finetune.train import _collate, batch_loss, encode

    model = tiny_model(tokenizer)
    encoded = [encode(tokenizer, p) for p in PAIRS[:6]]
    assert len({len(ids) for ids, _ in encoded}) > 1  # the batch really is padded
    windowed, tokens = batch_loss(model, _collate(encoded, tokenizer.pad_token_id or 0), reduction="sum")
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, start in encoded:
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
            target = torch.tensor(ids[1:])
            target[:start - 1] = -100
            total += float(torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum"))
            count += int((target != -100).sum())
    assert tokens == count
    assert windowed.item() == pytest.approx(total, rel=1e-4)


def test_a_batch_runs_its_shared_prefix_once_with_the_same_loss_and_gradients(tokenizer):
    """The rows' common prefix (chat template, instructions) runs once, its keys and values repeated
    for the rows: the loss and every gradient equal those of the rows run whole."""
    from workbench.finetune.train import SHARED_MIN, _collate, batch_loss, encode

    encoded = [encode(tokenizer, p) for p in PAIRS[:6]]
    shared, whole = (_collate(encoded, tokenizer.pad_token_id or 0, share=s) for s in (True, False))
    assert shared[4] is not None and shared[4].shape[1] >= SHARED_MIN and whole[4] is None
    assert shared[0].shape[1] + shared[4].shape[1] == whole[0].shape[1]
    results = []
    for batch in (shared, whole):
        model = tiny_model(tokenizer).train()
        loss, tokens = batch_loss(model, batch)
        loss.backward()
        results.append((loss.item(), tokens, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_s, tokens_s, grads_s), (loss_w, tokens_w, grads_w) = results
    assert tokens_s == tokens_w and loss_s == pytest.approx(loss_w, rel=1e-5)
    assert grads_s.keys() == grads_w.keys()
    for name in grads_w:
        assert torch.allclose(grads_s[name], grads_w[name], rtol=1e-4, atol=1e-6), name


def test_a_batch_whose_prompts_barely_overlap_is_not_split(tokenizer):
    from workbench.finetune.train import _collate, encode

    one = Pair([{"role": "user", "content": "alpha"}], '{"label": "a"}')
    other = Pair([{"role": "system", "content": "Other."}, {"role": "user", "content": "beta"}], '{"label": "b"}')
    batch = _collate([encode(tokenizer, one), encode(tokenizer, other)], 0)
    assert batch[4] is None


def _train(tokenizer, tmp_path, steps=12, every=4, status=None, name="ckpt", minutes=None, precision="float32",
           layers=None, group_by_length=False):
    from workbench.finetune.train import TrainConfig, train

    config = TrainConfig(rank=4, alpha=8, max_steps=steps, batch_size=4, learning_rate=0.05, checkpoint_every=every,
                         max_minutes=minutes, precision=precision, layers=layers, group_by_length=group_by_length)
    return train(PAIRS, None, config, tmp_path / name, "fingerprint", status=status, base=(tokenizer, tiny_model(tokenizer)))


def _weights(trained) -> dict:
    from peft import get_peft_model_state_dict

    return {k: v.clone() for k, v in get_peft_model_state_dict(trained.model).items()}


def test_training_is_seeded_and_moves_the_answer_loss_down(tokenizer, tmp_path):
    """(A random two-layer model learns little in 12 steps; that the real model learns is in
    test_finetune_e2e.py. Here: the update goes downhill, and the same seed gives the same weights.)"""
    from workbench.finetune.train import answer_loss

    before = answer_loss(tiny_model(tokenizer), tokenizer, PAIRS)
    first, second = _train(tokenizer, tmp_path, name="a"), _train(tokenizer, tmp_path, name="b")
    assert first.steps == 12 and first.planned_steps == 12
    after = answer_loss(first.model, tokenizer, PAIRS)
    assert after < before - 0.1, (before, after)
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bfloat16_products_train_seeded_float32_weights_that_move_the_loss_as_float32_does(tokenizer, tmp_path):
    from workbench.finetune.train import answer_loss, resolve_precision

    assert resolve_precision("auto") in ("float32", "bfloat16") and resolve_precision("float32") == "float32"
    before = answer_loss(tiny_model(tokenizer), tokenizer, PAIRS)
    low, again = (_train(tokenizer, tmp_path, name=n, precision="bfloat16") for n in ("a", "b"))
    full = _train(tokenizer, tmp_path, name="c")
    a, b, c = _weights(low), _weights(again), _weights(full)
    assert all(v.dtype == torch.float32 for v in a.values())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the products really were bfloat16
    after_low, after_full = answer_loss(low.model, tokenizer, PAIRS), answer_loss(full.model, tokenizer, PAIRS)
    assert after_low < before - 0.1, (before, after_low)
    assert after_low == pytest.approx(after_full, rel=0.05), (after_low, after_full)


def test_layers_puts_lora_in_the_top_blocks_only_and_the_backward_pass_stops_below_them(tokenizer, tmp_path):
    from workbench.finetune.train import TrainConfig, answer_loss, describe, lora_config

    before = answer_loss(tiny_model(tokenizer), tokenizer, PAIRS)
    top = _train(tokenizer, tmp_path, name="top", layers=1)
    weights = _weights(top)
    assert weights and all(".layers.1." in k for k in weights), sorted(weights)[:4]
    assert answer_loss(top.model, tokenizer, PAIRS) < before - 0.1
    # no autograd graph through the lower block: none of its activations asks for a gradient
    seen = []
    block = top.model.base_model.model.model.layers[0]
    handle = block.register_forward_hook(lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple) else out))
    top.model(input_ids=torch.tensor([[1, 2, 3]]))
    handle.remove()
    assert seen and not seen[0].requires_grad
    assert lora_config(TrainConfig(layers=2), 30).layers_to_transform == [28, 29]
    assert lora_config(TrainConfig(), 30).layers_to_transform is None
    with pytest.raises(UserError, match="layers 3 exceeds the base model's 2 transformer blocks"):
        _train(tokenizer, tmp_path, name="many", layers=3)
    # adapters trained before `layers` existed keep their cache keys
    assert "layers" not in describe(TrainConfig()) and '"layers": 4' in describe(TrainConfig(layers=4))


def test_group_by_length_trains_seeded_other_batches_and_keys_its_adapters_apart(tokenizer, tmp_path):
    from workbench.finetune.train import TrainConfig, answer_loss, describe

    before = answer_loss(tiny_model(tokenizer), tokenizer, PAIRS)
    grouped = _train(tokenizer, tmp_path, name="g", group_by_length=True)
    again = _weights(_train(tokenizer, tmp_path, name="g2", group_by_length=True))
    plain = _weights(_train(tokenizer, tmp_path, name="p"))
    weights = _weights(grouped)
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert any(not torch.equal(weights[k], plain[k]) for k in weights)  # other batches, other updates
    assert answer_loss(grouped.model, tokenizer, PAIRS) < before - 0.1
    assert "group_by_length" not in describe(TrainConfig())
    assert '"group_by_length": true' in describe(TrainConfig(group_by_length=True))
    with pytest.raises(UserError, match="group_by_length must be true or false, got 'yes'"):
        TrainConfig(group_by_length="yes").check(100)


def test_a_time_budget_the_plan_fits_in_leaves_training_seeded(tokenizer, tmp_path):
    """Every shipped spec sets max_minutes. When the planned steps fit in it, the rate follows the
    steps alone: reading the clock into it made two trainings of the same pairs and seed differ."""
    first = _weights(_train(tokenizer, tmp_path, name="a", minutes=30))
    second = _weights(_train(tokenizer, tmp_path, name="b", minutes=30))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_killed_training_resumes_from_its_checkpoint_to_the_same_weights(tokenizer, tmp_path):
    whole = _weights(_train(tokenizer, tmp_path, name="whole"))

    def kill_at_step_7(message: str) -> None:
        if "step 7/" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(tokenizer, tmp_path, status=kill_at_step_7, name="killed")
    assert (tmp_path / "killed" / "finetune.pt").is_file()
    resumed = _train(tokenizer, tmp_path, name="killed")
    assert resumed.resumed_from == 4 and resumed.steps == 12
    again = _weights(resumed)
    assert all(torch.allclose(whole[k], again[k], atol=1e-6) for k in whole)


def test_a_full_disk_keeps_the_last_checkpoint_and_fails_the_training(tokenizer, tmp_path, monkeypatch):
    from workbench.finetune import train as training

    real_save = torch.save
    calls = []

    def save(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(training.TrainingFailed, match="No space left on device.*previous checkpoint is kept"):
        _train(tokenizer, tmp_path, name="full")
    kept = torch.load(tmp_path / "full" / "finetune.pt", weights_only=False)
    assert kept["step"] == 4 and not (tmp_path / "full" / "finetune.tmp").exists()


def test_the_learning_rate_warms_up_then_decays_to_zero_by_steps_or_by_the_time_budget():
    from workbench.finetune.train import lr_factor

    planned = 100  # warm-up: 5 steps
    assert [lr_factor(s, planned) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lr_factor(5, planned) == 1.0 and lr_factor(99, planned) == pytest.approx(1 / 95)
    assert [lr_factor(s, planned) for s in range(5, 100)] == sorted((lr_factor(s, planned) for s in range(5, 100)),
                                                                   reverse=True)
    # half the time budget gone at step 20: the rate follows the clock, not the plan
    assert lr_factor(20, planned, time_used=0.5) == pytest.approx(0.5)
    assert lr_factor(20, planned, time_used=0.01) == pytest.approx(1 - 15 / 95)
    assert lr_factor(20, planned, time_used=1.2) == 0.0


def test_a_run_stopped_by_max_minutes_ends_at_a_low_learning_rate(tokenizer, tmp_path, monkeypatch):
    """On a clock that advances one second per reading, 12 planned steps do not fit in 15 s: the
    run stops early, and the rate it ends at is low (the step plan alone would still be high)."""
    import re
    import time

    from workbench.finetune.train import TrainConfig, lr_factor, train

    now = [1000.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    monkeypatch.setattr(time, "perf_counter", clock)
    rates: list[float] = []
    config = TrainConfig(rank=4, alpha=8, max_steps=12, batch_size=4, learning_rate=0.05, max_minutes=0.25)
    trained = train(PAIRS, None, config, tmp_path / "budget", "fingerprint", base=(tokenizer, tiny_model(tokenizer)),
                    status=lambda m: rates.append(float(re.search(r"lr ([0-9.e+-]+)", m).group(1))))
    assert trained.stopped and 3 <= trained.steps < 12, trained
    assert rates == sorted(rates, reverse=True) and len(rates) == trained.steps  # (a one-step warm-up), then down
    assert rates[-1] < 0.25 * config.learning_rate
    assert lr_factor(len(rates) - 1, 12) > 0.3  # what the step plan alone would have used
