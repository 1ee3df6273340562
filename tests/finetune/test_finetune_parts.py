"""The fine-tuning parts that need no training: training pairs are the exact prompts the
program sends, the GGUF adapter writer and its checks, parameter refusals, and the
`lm.lora` spec field. Recorded LM, real CLI; the training itself is in test_finetune_e2e.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import FAST_LM, SPEC, run_main

torch = pytest.importorskip("torch")


def _router(train: int = 40):
    from workbench.runner import prepare
    from workbench.spec import validate

    data = yaml.safe_load(SPEC.read_text())
    data["program"]["params"]["candidates"] = 0
    data["dataset"].update(train=train, dev=10, test=10)
    data["lm"].update(backend="recorded", model="synthetic")
    return prepare(validate(data, str(SPEC)))


def test_training_pairs_are_the_messages_the_program_sends_with_the_gold_answer():
    import dspy

    from workbench.finetune.pairs import build_pairs
    from workbench.lm import build_lm
    from workbench.lm.adapters import build_adapter

    prepared = _router()
    lm = build_lm(prepared.spec.lm)
    with dspy.context(lm=lm, adapter=build_adapter("compact_json")):
        pairs = build_pairs(prepared.program, prepared.trainset[:5])
        calls_before = lm.engine.usage.snapshot()
        for example, pair in zip(prepared.trainset[:5], pairs, strict=True):
            prepared.program(**example.inputs())  # the real call: the LM sees these messages
            assert lm.history[-1]["messages"] == pair.messages
            assert pair.answer == '{"label": "%s"}' % example.label
    assert len(pairs) == 5
    assert lm.engine.usage.since(calls_before).calls == 5  # only the real calls reached the LM


def test_the_training_speed_benchmark_times_the_prompts_a_run_trains_on():
    """benchmarks/training_speed.py renders its batches outside `workbench run`: with the spec's
    adapter, as a run configures it (DSPy's default adapter writes prompts ~4x longer)."""
    import dspy

    from benchmarks.training_speed import training_pairs
    from workbench.lm import build_lm
    from workbench.lm.adapters import build_adapter

    prepared = _router()
    pairs = training_pairs(prepared.spec, prepared.program, prepared.trainset[:3])
    lm = build_lm(prepared.spec.lm)
    with dspy.context(lm=lm, adapter=build_adapter(prepared.spec.lm.adapter)):
        for example, pair in zip(prepared.trainset[:3], pairs, strict=True):
            prepared.program(**example.inputs())
            assert lm.history[-1]["messages"] == pair.messages


def test_narrowed_candidates_do_not_give_the_answer_away_in_training_prompts():
    """The candidate ranker is fitted on the training messages, so on them it ranks the gold label
    first almost always: recorded in that order, the pairs would teach "take the first label".
    Recorded, each message's candidates come from a ranker fitted without it (out of fold)."""
    import dspy

    from workbench.finetune.pairs import build_pairs
    from workbench.lm.adapters import build_adapter
    from workbench.runner import prepare
    from workbench.spec import validate

    data = yaml.safe_load(SPEC.read_text())
    data["program"]["params"]["candidates"] = 10
    data["dataset"].update(name="banking77", train=600, dev=10, test=10)
    data["lm"].update(backend="recorded", model="synthetic")
    prepared = prepare(validate(data, str(SPEC)))
    examples = prepared.trainset[:200]
    pool = prepared.program.demo_pool

    def allowed(messages: list[dict]) -> list[str]:
        line = next(x for x in messages[-1]["content"].splitlines() if x.startswith("label must be one of: "))
        return line.split(": ", 1)[1].split(", ")

    def first_is_gold(lists, examples) -> float:
        return sum(x[0] == e.label for x, e in zip(lists, examples)) / len(examples)

    ranked = [prepared.program.allowed_labels(e.text) for e in examples]
    assert first_is_gold(ranked, examples) > 0.9  # why it matters
    held_out = [pool.top_labels_out_of_fold(e.text, 10) for e in examples]
    kept = [e for e, top in zip(examples, held_out) if e.label in top]
    assert 0 < len(examples) - len(kept) < 0.2 * len(examples)  # some gold labels fall outside the ten
    skipped: dict[str, int] = {}
    with dspy.context(adapter=build_adapter("compact_json")):
        pairs = build_pairs(prepared.program, examples, skipped=skipped)
        again = build_pairs(prepared.program, examples)
    assert skipped == {"outside_choices": len(examples) - len(kept), "failed_metric": 0, "failed_call": 0}
    lists = [allowed(p.messages) for p in pairs]
    assert lists == [top for e, top in zip(examples, held_out) if e.label in top]  # only where gold is listed
    assert all(e.label in x for e, x in zip(kept, lists))
    assert first_is_gold(lists, kept) < first_is_gold(ranked, examples) - 0.1  # the first label is no giveaway
    assert [p.messages for p in again] == [p.messages for p in pairs]  # the same folds every time
    assert prepared.program.allowed_labels(examples[0].text) == ranked[0]  # evaluation keeps the full ranker


def test_retrieved_demos_in_training_prompts_never_show_the_query_itself():
    """After retrieval_demos the pool holds the training examples, so a training message's nearest
    demo is itself with its gold label: recorded so, the pairs would teach "copy the last demo".
    Recorded, the query (and any pool example with the same text) is left out of its own demos;
    at evaluation the pool is whole again."""
    import dspy

    from workbench.finetune.pairs import build_pairs
    from workbench.lm.adapters import build_adapter

    prepared = _router(train=60)
    program = prepared.program
    program.demo_pool.fill([e.toDict() for e in prepared.trainset], k=3)
    examples = prepared.trainset[:20]

    def demo_texts(messages: list[dict]) -> str:
        return "\n".join(str(m["content"]) for m in messages[1:-1])  # between the system turn and the query

    def own_demo(text: str) -> bool:
        return any(d["text"] == text for d in program.demo_pool.demos_for(text))

    assert all(own_demo(e.text) for e in examples)  # why it matters: each is its own nearest demo
    with dspy.context(adapter=build_adapter("compact_json")):
        pairs = build_pairs(program, examples)
    assert len(pairs) == len(examples)
    assert all(demo_texts(p.messages).count('"label"') == 3 for p in pairs)  # still three demos each
    assert not any(e.text in demo_texts(p.messages) for e, p in zip(examples, pairs))
    assert all(own_demo(e.text) for e in examples)  # the pool is whole again afterwards


def test_a_pool_leaving_the_query_out_does_so_for_balanced_demos_and_duplicates_too():
    from programs.pool import ExamplePool

    rows = [{"text": "reset my pin", "label": "pin"}, {"text": "reset my pin", "label": "pin"},
            {"text": "reset my card pin", "label": "pin"}, {"text": "card lost", "label": "card"},
            {"text": "lost my card", "label": "card"}]
    pool = ExamplePool(examples=rows, k=2, balanced=True)
    with pool.leaving_self_out():
        balanced = pool.demos_for("reset my pin", ["pin", "card"])
        nearest = pool.nearest("reset my pin", 5)
    assert "reset my pin" not in [d["text"] for d in balanced + nearest]
    assert [d["label"] for d in balanced] == ["card", "pin"]
    assert len(nearest) == 3
    assert pool.nearest("reset my pin", 1)[0]["text"] == "reset my pin"


def test_a_label_the_other_folds_never_show_is_ranked_by_the_full_ranker():
    """Out of fold, a message whose label has no row in the other folds could never have its gold
    label among the candidates: it gets the full ranker's list (at test time that ranker knows
    the label); every other message keeps its out-of-fold list."""
    import zlib

    from programs.pool import ExamplePool

    rows = [{"text": f"please {w} my {o}", "label": lab} for lab, (w, o) in
            [("card", (v, "card")) for v in ("block", "freeze", "cancel", "renew", "replace", "activate")]
            + [("transfer", (v, "transfer")) for v in ("send", "cancel", "track", "undo", "check", "delay")]
            + [("pin", ("change", "pin"))]]  # one row: only in its own fold
    pool = ExamplePool()
    pool.fill(rows)
    lone = rows[-1]["text"]
    assert pool.top_labels_out_of_fold(lone, 2) == pool.top_labels(lone, 2) and "pin" in pool.top_labels(lone, 2)
    fold = lambda text: zlib.crc32(text.encode()) % 5  # noqa: E731 - the pool's folds
    same_fold = [r["text"] for r in rows[:-1] if fold(r["text"]) == fold(lone)]
    other_folds = [r["text"] for r in rows[:-1] if fold(r["text"]) != fold(lone)]
    assert other_folds
    # a ranker fitted without the lone row cannot list "pin"; one fitted with it lists all three
    assert all("pin" not in pool.top_labels_out_of_fold(t, 3) for t in same_fold)
    assert all("pin" in pool.top_labels_out_of_fold(t, 3) for t in other_folds)


def test_gold_pairs_need_the_outputs_in_the_data(tmp_path):
    import dspy

    from workbench.errors import UserError
    from workbench.finetune.pairs import build_pairs
    from workbench.lm.adapters import build_adapter

    prepared = _router()
    examples = [dspy.Example(text=e.text).with_inputs("text") for e in prepared.trainset[:2]]
    with dspy.context(adapter=build_adapter("compact_json")), pytest.raises(UserError, match="source: bootstrap"):
        build_pairs(prepared.program, examples)


def test_function_calling_gold_pairs_are_the_accepted_call_and_drop_a_wrongly_chosen_function():
    """BFCL's training items hold accepted-values lists, not the call: the program's own
    `finetune_gold` gives the call, and with the metric an item whose function word overlap
    picks wrongly is dropped instead of teaching arguments for the other function."""
    import json

    import dspy

    from metrics.bfcl_ast import accepted_calls
    from programs.tool_use import example_call, most_overlapping
    from tests.conftest import ROOT
    from workbench.finetune.pairs import build_pairs
    from workbench.lm.adapters import build_adapter
    from workbench.run_parts import metric_fns
    from workbench.runner import prepare
    from workbench.spec import load_spec

    prepared = prepare(load_spec(ROOT / "experiments" / "tools_bfcl_simple.yaml",
                                 ["lm.backend=recorded", "lm.model=synthetic", "dataset.test=4"]))
    examples = list(prepared.trainset)
    _, metric, _ = metric_fns(prepared.spec)
    right = [e for e in examples if most_overlapping(e.question, json.loads(e.functions))["name"]
             == example_call(accepted_calls(e))["name"]]
    assert 0 < len(right) < len(examples)  # word overlap picks wrongly on some of the 80
    with dspy.context(adapter=build_adapter("json")):
        unchecked = build_pairs(prepared.program, examples)
        skipped: dict[str, int] = {}
        kept = build_pairs(prepared.program, examples, metric=metric, skipped=skipped)
    assert len(kept) == len(right)
    assert skipped["outside_choices"] + skipped["failed_metric"] == len(examples) - len(right)
    from workbench.optimize.finetune import _describe_skipped

    said = _describe_skipped(skipped, len(examples))  # the run's warning speaks of functions here, not labels alone
    assert said.startswith(f"{len(examples) - len(right)} of {len(examples)} ") and "another function" in said
    # without the metric, only gold calls that do not parse under their own prompt are gone (arguments
    # for the other function that break the chosen one's schema); every right-function call stays
    assert len(right) < len(unchecked) < len(examples)
    assert all(any(e.question in json.dumps(p.messages, ensure_ascii=False) for p in unchecked) for e in right)
    for example, pair in zip(right, kept, strict=True):
        call = example_call(accepted_calls(example))
        assert json.loads(pair.answer)["arguments"] == call["arguments"]
        assert example.question in json.dumps(pair.messages, ensure_ascii=False)


def _fake_lora(layers: int = 2, rank: int = 4, hidden: int = 8, kv: int = 4) -> dict:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for i in range(layers):
        for module, out in (("self_attn.q_proj", hidden), ("self_attn.k_proj", kv), ("mlp.down_proj", hidden)):
            prefix = f"base_model.model.model.layers.{i}.{module}"
            state[f"{prefix}.lora_A.weight"] = torch.randn(rank, hidden, generator=generator)
            state[f"{prefix}.lora_B.weight"] = torch.randn(out, rank, generator=generator)
    return state


def test_the_gguf_adapter_has_llama_cpp_names_shapes_alpha_and_its_base(tmp_path):
    import gguf

    from workbench.finetune.gguf_lora import adapter_base, write_adapter

    state = _fake_lora()
    path = write_adapter(tmp_path / "a.gguf", state, alpha=8.0, n_head=2, n_head_kv=1, base_sha256="ab" * 32)
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == {f"blk.{i}.{m}.weight.lora_{ab}" for i in range(2) for m in ("attn_q", "attn_k", "ffn_down")
                            for ab in "ab"}
    assert list(tensors["blk.0.attn_q.weight.lora_a"].shape) == [8, 4]  # ggml order: [in, rank]
    assert list(tensors["blk.0.attn_k.weight.lora_b"].shape) == [4, 4]  # [rank, out]
    assert float(reader.fields["adapter.lora.alpha"].parts[-1][0]) == 8.0
    assert adapter_base(path) == "ab" * 32
    # v and down projections are copied as they are; q and k rows take llama.cpp's rotary order
    down = state["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"].numpy()
    assert np.array_equal(np.asarray(tensors["blk.1.ffn_down.weight.lora_b"].data).reshape(down.shape), down)
    q = state["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].numpy()
    written = np.asarray(tensors["blk.0.attn_q.weight.lora_b"].data).reshape(q.shape)
    assert not np.array_equal(written, q) and sorted(map(tuple, written)) == sorted(map(tuple, q))


def test_an_adapter_is_refused_when_changed_or_made_for_another_base(tmp_path):
    from workbench.errors import UserError
    from workbench.finetune.gguf_lora import check_adapter, sha256_file, write_adapter

    base = tmp_path / "base.gguf"
    base.write_bytes(b"the base weights")
    path = write_adapter(tmp_path / "a.gguf", _fake_lora(), alpha=8.0, n_head=2, n_head_kv=1,
                         base_sha256=sha256_file(base))
    digest = check_adapter(path, base)
    assert digest == sha256_file(path)
    with pytest.raises(UserError, match="was changed"):
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 1
        (tmp_path / "b.gguf").write_bytes(bytes(raw))
        check_adapter(tmp_path / "b.gguf", base, expected_sha256=digest)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"another model")
    with pytest.raises(UserError, match="trained on another base model"):
        check_adapter(path, other)
    with pytest.raises(UserError, match="not a GGUF LoRA adapter"):
        check_adapter(base, base)


def _refusal(tmp_path, optimizer: str, params: dict) -> tuple[str, str]:
    """(last stderr line, all stderr) of a run of the default spec with this optimizer, which must exit 2."""
    data = yaml.safe_load(SPEC.read_text())
    data["optimizer"] = {"name": optimizer, "params": params}
    spec = tmp_path / "opt.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = run_main("run", str(spec), "--set", "dataset.train=40", "--set", "tracking.enabled=false")
    assert result.returncode == 2, result.stderr[-2000:]
    return result.stderr.strip().splitlines()[-1], result.stderr


@pytest.mark.parametrize("params, field, needle", [
    ({"max_steps": 0}, "optimizer.params.max_steps", "zero steps"),
    ({"batch_size": 64, "max_examples": 20}, "optimizer.params.batch_size", "fewer than one batch"),
    ({"target_modules": ["lm_head"]}, "optimizer.params.target_modules", "unknown target modules"),
    ({"learning_rate": -1}, "optimizer.params.learning_rate", "positive number"),
    ({"source": "teacher"}, "optimizer.params.source", "gold or bootstrap"),
    ({"precision": "float16"}, "optimizer.params.precision", "auto, float32, bfloat16"),
    ({"layers": 0}, "optimizer.params.layers", "positive integer"),
    ({"layers": 40}, "optimizer.params.layers", "exceeds the 30 transformer blocks of"),
])
def test_bad_finetune_parameters_are_one_line_before_training(params, field, needle, tmp_path):
    line, stderr = _refusal(tmp_path, "finetune", params)
    assert field in line and needle in line, line
    assert "Traceback" not in stderr


def test_too_many_lora_blocks_in_a_sequence_step_name_the_step(tmp_path):
    steps = [{"name": "retrieval_demos", "params": {"k": 2}}, {"name": "finetune", "params": {"layers": 31}}]
    line, stderr = _refusal(tmp_path, "sequence", {"steps": steps})
    assert "optimizer.params.steps.1.params.layers" in line and "exceeds the 30 transformer blocks" in line, line
    assert "Traceback" not in stderr


@pytest.mark.parametrize("overrides, needle", [
    (["lm.lora=missing.gguf"], "lm.lora: LoRA adapter missing.gguf is not a .gguf file"),
    ([*FAST_LM, "lm.lora=x.gguf"], "lora applies to backend 'embedded' only"),
])
def test_a_bad_lora_in_the_spec_is_one_line(overrides, needle, tmp_path):
    args = [a for o in overrides for a in ("--set", o)]
    result = run_main("run", str(SPEC), *args, "--set", "tracking.enabled=false")
    assert result.returncode == 2 and needle in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]


def test_finetune_needs_the_embedded_lm(tmp_path):
    data = yaml.safe_load(SPEC.read_text())
    data["optimizer"] = {"name": "finetune", "params": {"max_steps": 1}}
    spec = tmp_path / "ft.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = run_main("run", str(spec), *[a for o in FAST_LM for a in ("--set", o)], "--set", "dataset.train=40",
                      "--set", "tracking.enabled=false")
    assert result.returncode == 2 and "needs lm.backend embedded" in result.stderr, result.stderr[-2000:]
    assert Path(spec).exists()


@pytest.mark.parametrize("params, field, needle", [
    ({"strategy": "p -> x"}, "optimizer.params.strategy", "steps p (prompt) and w (weights)"),
    ({"strategy": "w -> p -> w"}, "optimizer.params.strategy", "exactly one w"),
    ({"prompt_optimizer": "finetune"}, "optimizer.params.strategy", "must optimize prompts"),
    ({"finetune_params": {"max_steps": 0}}, "optimizer.params.finetune_params.max_steps", "zero steps"),
    ({"prompt_optimizer": "MIPROv2", "prompt_params": {"auto": "light", "num_trials": 2}},
     "optimizer.params.prompt_params.num_trials", "cannot be set together with auto"),
])
def test_better_together_strategies_are_checked_before_anything_runs(params, field, needle, tmp_path):
    line, _ = _refusal(tmp_path, "BetterTogether", params)
    assert field in line and needle in line, line


def test_better_together_is_its_steps():
    from workbench.optimize.sequence import steps_of

    assert [n for n, _ in steps_of("BetterTogether", {})] == ["BootstrapFewShot", "finetune", "BootstrapFewShot"]
    assert steps_of("BetterTogether", {"strategy": "p -> w", "prompt_optimizer": "LabeledFewShot",
                                       "finetune_params": {"rank": 8}})[1] == ("finetune", {"rank": 8})


def test_a_base_model_of_another_architecture_is_refused_naming_file_and_architecture(tmp_path):
    import gguf

    model = tmp_path / "tiny-gpt2.gguf"
    writer = gguf.GGUFWriter(str(model), "gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = yaml.safe_load(SPEC.read_text())
    data["optimizer"] = {"name": "finetune", "params": {"max_steps": 1}}
    data["lm"]["model"] = str(model)
    spec = tmp_path / "ft.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = run_main("run", str(spec), "--set", "dataset.train=40", "--set", "tracking.enabled=false")
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert "lm.model" in line and "tiny-gpt2.gguf is a 'gpt2' model" in line, line
