"""`finetune` end to end on the embedded LM: a tiny fine-tune (≤ 30 steps on ≤ 100 examples)
lowers held-out answer loss and changes predictions; the GGUF adapter in llama.cpp answers as the
torch model does; a run logs its adapter, exports it, and the bundle serves it (and refuses a
changed one); a run killed mid-training resumes from its checkpoint. Real CLI, real MLflow store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, Store, free_port, run_cli, stop, wait_for_http

pytestmark = pytest.mark.slow
SPEC = ROOT / "experiments" / "routing_clinc150_finetune.yaml"
TINY = ["dataset.train=200", "dataset.dev=10", "dataset.test=40", "optimizer.params.max_examples=96",
        "optimizer.params.max_steps=12", "optimizer.params.batch_size=8", "optimizer.params.checkpoint_every=2"]


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _run_id(stdout: str) -> str:
    return next(x for x in stdout.splitlines() if x.startswith("run_id=")).split()[0][len("run_id="):]


@pytest.mark.parametrize("layers", [None, 10], ids=["every-block", "top-10-blocks"])
def test_the_gguf_adapter_answers_as_the_torch_model_and_lowers_held_out_loss(tmp_path, layers):
    """(`layers: 10`: the adapter holds the top 10 blocks' matrices only, and llama.cpp applies those.)
    The answers differ only where the torch model is near a tie (llama.cpp multiplies Q4_1 weights by
    8-bit activations), so the adapter is trained until it decides (30 steps at 5e-3: 96 and 94 of 100
    held-out answers identical in float32; at 2e-3 after 24 steps 87 of 100, a 26-of-30 failure) and
    60 items are compared."""
    import dspy
    import torch
    from llama_cpp import Llama

    from workbench.finetune.gguf_lora import sha256_file, write_adapter
    from workbench.finetune.pairs import build_pairs
    from workbench.finetune.train import TrainConfig, answer_loss, train
    from workbench.lm.adapters import build_adapter
    from workbench.optimize.finetune import _lora_state
    from workbench.runner import prepare
    from workbench.spec import load_spec

    prepared = prepare(load_spec(SPEC, ["dataset.train=200", "dataset.test=60", "tracking.enabled=false"]))
    with dspy.context(adapter=build_adapter("compact_json")):
        pairs = build_pairs(prepared.program, prepared.trainset[:96])
        held = build_pairs(prepared.program, prepared.evalset[:60])
    base_path = prepared.spec.lm.model
    from workbench.lm.models import resolve_model_path

    base_path = resolve_model_path(base_path)
    config = TrainConfig(max_steps=30, batch_size=4, learning_rate=5e-3, layers=layers)
    trained = train(pairs, base_path, config, None, "t")
    blocks = {int(k.split(".layers.")[1].split(".")[0]) for k in _lora_state(trained.model)}
    assert blocks == (set(range(30)) if layers is None else set(range(20, 30))), sorted(blocks)
    after = answer_loss(trained.model, trained.tokenizer, held)
    with trained.model.disable_adapter():
        before = answer_loss(trained.model, trained.tokenizer, held)
    assert after < before / 2, (before, after)
    adapter = write_adapter(tmp_path / "a.gguf", _lora_state(trained.model), alpha=config.alpha,
                            n_head=trained.model.config.num_attention_heads,
                            n_head_kv=trained.model.config.num_key_value_heads, base_sha256=sha256_file(base_path))

    tokenizer = trained.tokenizer

    def torch_answer(messages) -> str:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if not isinstance(ids, list) else ids
        out = trained.model.generate(input_ids=torch.tensor([ids]), max_new_tokens=16, do_sample=False,
                                     use_cache=True)
        return tokenizer.decode(out[0][len(ids):], skip_special_tokens=True).strip()

    tuned = Llama(model_path=str(base_path), n_ctx=1024, lora_path=str(adapter), verbose=False, seed=0)
    plain = Llama(model_path=str(base_path), n_ctx=1024, verbose=False, seed=0)

    def gguf_answer(llama, messages) -> str:
        out = llama.create_chat_completion(messages=messages, temperature=0.0, max_tokens=16)
        return out["choices"][0]["message"]["content"].strip()

    answers = [gguf_answer(tuned, p.messages) for p in held]
    same = sum(torch_answer(p.messages) == answer for p, answer in zip(held, answers))
    assert same >= 0.9 * len(held), f"{same} of {len(held)} greedy answers identical"
    changed = sum(answer != gguf_answer(plain, p.messages) for p, answer in zip(held, answers))
    assert changed >= 10, changed


def test_the_same_seed_trains_the_same_adapter_from_the_gguf_and_from_its_saved_copy(tmp_path, monkeypatch):
    """Two trainings of the real model on the same pairs, seed and time budget (every shipped spec
    sets max_minutes) give bit-identical LoRA weights: neither the clock nor torch's CPU threads
    enter a plan that fits its budget. The first reads the GGUF and saves its float32 copy, the
    second loads that copy (about 1 s instead of about 19), so the copy is the same model too."""
    import dspy
    import torch

    from workbench.finetune.base_model import DONE, copy_dir
    from workbench.finetune.pairs import build_pairs
    from workbench.finetune.train import TrainConfig, train
    from workbench.lm.adapters import build_adapter
    from workbench.lm.models import resolve_model_path
    from workbench.optimize.finetune import _lora_state
    from workbench.runner import prepare
    from workbench.spec import load_spec

    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path / "models"))
    prepared = prepare(load_spec(SPEC, ["dataset.train=200", "dataset.test=10", "tracking.enabled=false"]))
    with dspy.context(adapter=build_adapter("compact_json")):
        pairs = build_pairs(prepared.program, prepared.trainset[:32])
    base_path = resolve_model_path(prepared.spec.lm.model)
    copy = copy_dir(base_path)

    def weights() -> dict:
        config = TrainConfig(max_steps=4, batch_size=8, learning_rate=2e-3, max_minutes=30)
        return {k: v.clone() for k, v in _lora_state(train(pairs, base_path, config, None, "s").model).items()}

    assert not copy.exists()
    first = weights()
    assert (copy / DONE).is_file() and (copy / "model.safetensors").is_file()
    second = weights()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_a_finetune_run_logs_exports_and_serves_its_adapter_and_refuses_a_changed_one(tmp_path):
    store = Store(tmp_path / "mlruns")
    env = {"WORKBENCH_CACHE": str(tmp_path / "cache")}
    tuned = run_cli("run", str(SPEC), "--quiet", *_sets(TINY + store.overrides), env=env)
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    run_id = _run_id(tuned.stdout)
    base = run_cli("run", str(SPEC), "--quiet", *_sets(TINY + store.overrides + ["optimizer.name=none",
                                                                                 "optimizer.params={}"]), env=env)
    assert base.returncode == 0, base.stderr[-3000:]
    client = store.client()
    run = client.get_run(run_id)
    sha = run.data.tags["workbench.lora_sha256"]
    assert run.data.tags["workbench.lm"].endswith(f"+lora-{sha[:12]}")
    assert run.data.metrics["finetune.steps"] == 12 and run.data.metrics["finetune.pairs"] == 96
    from workbench.finetune.train import resolve_precision

    assert run.data.tags["workbench.finetune_precision"] == resolve_precision("auto")  # what this CPU trained in
    assert "workbench.finetune_reused" not in run.data.tags
    again = run_cli("run", str(SPEC), "--quiet", *_sets(TINY + store.overrides), env=env)  # same pairs and parameters
    assert again.returncode == 0, again.stderr[-3000:]
    reused = client.get_run(_run_id(again.stdout)).data
    assert reused.tags["workbench.lora_sha256"] == sha and "finetune.steps" not in reused.metrics
    assert reused.tags["workbench.finetune_reused"].endswith(".gguf") and reused.metrics["finetune.pairs"] == 96
    assert reused.tags["workbench.finetune_precision"] == run.data.tags["workbench.finetune_precision"]
    [logged] = client.list_artifacts(run_id, "lora")
    assert logged.path.endswith(".gguf")
    base_score = client.get_run(_run_id(base.stdout)).data.metrics["score"]
    assert run.data.metrics["score"] > base_score  # 12 steps already beat the base model on these 40 items

    bundle = tmp_path / "bundle"
    exported = run_cli("export", run_id, "--out", str(bundle), "--tracking-uri", store.uri, env=env)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (bundle / "lora.gguf").is_file() and yaml.safe_load((bundle / "lm.json").read_text())["lora"] == "lora.gguf"
    assert "verified" in exported.stdout + exported.stderr

    from workbench.export.loaded import load

    loaded = load(bundle)
    assert loaded.lm.model.endswith(f"+lora-{sha[:12]}")
    question = "how do i get to the airport by train"
    answer = loaded(text=question)["label"]
    assert answer in loaded.program.labels

    port = free_port()  # the bundle served over real HTTP answers as the loaded program does, adapter and all
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(bundle), "--port", str(port)],
                            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/health", proc, seconds=120, what="workbench serve", log=lambda: proc.stdout.read())
        predicted = httpx.post(f"{base_url}/predict", json={"text": question}, timeout=60)
        assert predicted.status_code == 200 and predicted.json()["label"] == answer, predicted.text
        assert httpx.get(f"{base_url}/metadata", timeout=30).json()["lm"]["model"].endswith(f"+lora-{sha[:12]}")
    finally:
        stop(proc, proc.stdout)  # its piped output closed with it

    raw = bytearray((bundle / "lora.gguf").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (bundle / "lora.gguf").write_bytes(bytes(raw))
    served = run_cli("serve", str(bundle), "--port", str(free_port()), env=env, timeout=120)
    assert served.returncode == 2 and "lora.gguf" in served.stderr and "SHA-256" in served.stderr, served.stderr[-2000:]


def test_a_run_killed_mid_training_resumes_from_its_checkpoint(tmp_path):
    """(With batches grouped by length: the resumed run must cut the same schedule.)"""
    store = Store(tmp_path / "mlruns")
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path / "cache")}
    tiny = [*TINY, "optimizer.params.group_by_length=true"]
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(SPEC), "--quiet",
                             *_sets(tiny + store.overrides)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    checkpoint, deadline = None, time.time() + 600
    while time.time() < deadline and proc.poll() is None and checkpoint is None:
        time.sleep(0.5)
        found = list((tmp_path / "mlruns" / "artifacts").rglob("finetune.pt"))
        checkpoint = found[0] if found else None
    assert proc.poll() is None, "the run ended before a checkpoint: " + proc.communicate()[1][-2000:]
    time.sleep(1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    [killed] = [r for r in store.runs() if r["status"] == "RUNNING"]

    resumed = run_cli("run", str(SPEC), "--quiet", "--resume", killed["run_id"], *_sets(tiny + store.overrides),
                      env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    data = store.client().get_run(killed["run_id"]).data
    assert data.tags["workbench.resumed"] == "1"
    assert data.metrics["finetune.resumed_from_step"] >= 2 and data.metrics["finetune.steps"] == 12
    assert not Path(checkpoint).exists()  # trained: the adapter replaced the checkpoint


def test_a_function_caller_fine_tunes_on_the_gold_calls_its_training_questions_give(tmp_path):
    """BFCL through the CLI: the pairs are the 80 training questions' first accepted calls, less
    those whose function word overlap picks wrongly; the adapter is trained, logged and used."""
    import json

    from metrics.bfcl_ast import accepted_calls
    from programs.tool_use import example_call, most_overlapping
    from workbench.runner import prepare
    from workbench.spec import load_spec

    spec = ROOT / "experiments" / "tools_bfcl_simple.yaml"
    overrides = ["dataset.test=4", "optimizer.name=finetune",
                 'optimizer.params={"max_steps": 3, "batch_size": 8, "learning_rate": 0.001}']
    store = Store(tmp_path / "mlruns")
    tuned = run_cli("run", str(spec), "--quiet", *_sets(overrides + store.overrides),
                    env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    run = store.client().get_run(_run_id(tuned.stdout))
    train = prepare(load_spec(spec, ["tracking.enabled=false", "dataset.test=4"])).trainset
    right = [e for e in train if most_overlapping(e.question, json.loads(e.functions))["name"]
             == example_call(accepted_calls(e))["name"]]
    assert 0 < len(right) < len(train)
    assert run.info.status == "FINISHED" and run.data.metrics["finetune.pairs"] == len(right)
    assert run.data.metrics["finetune.steps"] == 3 and "workbench.lora_sha256" in run.data.tags
    assert run.data.metrics["n_examples"] == 4


def test_finetune_as_a_step_of_a_sequence_logs_what_it_trained(tmp_path):
    """finetune → retrieval_demos through the CLI: the run carries the adapter and the finetune.*
    metrics of the step (a sequence runs each step on a copy of the compile context)."""
    store = Store(tmp_path / "mlruns")
    steps = {"steps": [{"name": "finetune", "params": {"max_examples": 48, "max_steps": 4, "batch_size": 8,
                                                      "learning_rate": 0.002, "rank": 16, "alpha": 32}},
                       {"name": "retrieval_demos", "params": {"k": 2}}]}
    overrides = [*TINY[:2], "dataset.test=10", "optimizer.name=sequence", f"optimizer.params={json.dumps(steps)}",
                 *store.overrides]
    done = run_cli("run", str(SPEC), "--quiet", *_sets(overrides), env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    run = store.client().get_run(_run_id(done.stdout))
    assert run.data.tags["workbench.optimizer"] == "finetune+retrieval_demos"
    assert run.data.tags["workbench.lm"].endswith(f"+lora-{run.data.tags['workbench.lora_sha256'][:12]}")
    assert run.data.metrics["finetune.steps"] == 4 and run.data.metrics["finetune.pairs"] == 48
    assert run.data.metrics["n_examples"] == 10


def test_demos_kept_in_the_training_prompts_retrieval_demos_then_finetune(tmp_path):
    """retrieval_demos → finetune through the CLI: the adapter is trained on demo-laden prompts (a
    message never its own demo) and the evaluation routes with both the demos and the adapter."""
    store = Store(tmp_path / "mlruns")
    steps = {"steps": [{"name": "retrieval_demos", "params": {"k": 2}},
                       {"name": "finetune", "params": {"max_examples": 48, "max_steps": 6, "batch_size": 8,
                                                      "learning_rate": 0.002, "rank": 8, "alpha": 16}}]}
    overrides = [*TINY[:2], "dataset.test=10", "optimizer.name=sequence", f"optimizer.params={json.dumps(steps)}",
                 *store.overrides]
    done = run_cli("run", str(SPEC), "--quiet", *_sets(overrides), env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    run = store.client().get_run(_run_id(done.stdout))
    assert run.info.status == "FINISHED" and run.data.tags["workbench.optimizer"] == "retrieval_demos+finetune"
    assert run.data.metrics["finetune.steps"] == 6 and run.data.metrics["finetune.pairs"] == 48
    assert run.data.tags["workbench.lm"].endswith(f"+lora-{run.data.tags['workbench.lora_sha256'][:12]}")
    assert run.data.metrics["n_examples"] == 10


def test_a_router_weighing_its_unsure_messages_trains_and_logs_the_weights(tmp_path):
    """`unsure_weight` through the CLI on the embedded LM: a narrowed router's pairs are weighted by
    how unsure the out-of-fold ranker is (the run logs their mean, above 1 and below the cap), the
    weighted schedule trains, and the run routes with the adapter."""
    store = Store(tmp_path / "mlruns")
    overrides = [*TINY[:2], "dataset.test=10", "program.params.candidates=3", "program.params.ranker_hint=true",
                 "program.params.unsure_weight=8", "optimizer.params.max_examples=48", "optimizer.params.max_steps=6",
                 "optimizer.params.batch_size=8", *store.overrides]
    done = run_cli("run", str(SPEC), "--quiet", *_sets(overrides), env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    run = store.client().get_run(_run_id(done.stdout))
    assert run.info.status == "FINISHED" and run.data.metrics["finetune.steps"] == 6
    assert 1.0 < run.data.metrics["finetune.pair_weight_mean"] < 8.0
    assert run.data.tags["workbench.lm"].endswith(f"+lora-{run.data.tags['workbench.lora_sha256'][:12]}")


def _shipped_spec_cut_short(tmp_path, name: str, steps: int, overrides: list[str]):
    """Run `experiments/<name>` through the CLI with `steps` training steps; check it finished with its adapter
    on the run's LM; return the run and its predictions.json rows."""
    store = Store(tmp_path / "mlruns")
    sets = _sets([*overrides, f"optimizer.params.max_steps={steps}", *store.overrides])
    done = run_cli("run", str(ROOT / "experiments" / name), "--quiet", *sets,
                   env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    client = store.client()
    run = client.get_run(_run_id(done.stdout))
    assert run.info.status == "FINISHED" and run.data.metrics["finetune.steps"] == steps
    assert run.data.tags["workbench.lm"].endswith(f"+lora-{run.data.tags['workbench.lora_sha256'][:12]}")
    return run, store.predictions(run.info.run_id)


def test_the_shipped_intents_recipe_trains_with_the_guess_only_where_the_ranker_is_sure(tmp_path):
    """`experiments/routing_clinc150_intents_finetune.yaml` as shipped, cut to a few steps: the router
    narrows to 10 intents in label order with the guess from p = 0.5 on, trains, logs the adapter, and
    every answer is one of its candidates."""
    run, rows = _shipped_spec_cut_short(tmp_path, "routing_clinc150_intents_finetune.yaml", 4, [
        "dataset.train=750", "dataset.dev=10", "dataset.test=8", "optimizer.params.max_examples=32"])
    assert run.data.params["program.params.hint_from"] == "0.5"
    assert len(rows) == 8
    for row in rows:
        assert len(row["candidates"]) == 10 and row["predicted"] in row["candidates"], row


def test_the_shipped_bfcl_recipe_trains_on_the_other_half_and_scores_its_own(tmp_path):
    """`experiments/tools_bfcl_simple_finetune.yaml` as shipped, cut to a few steps: the function caller
    trains on gold calls, logs the adapter, and answers only requests of its own half, each a call of
    the function offered."""
    from workbench.registry import datasets

    _, rows = _shipped_spec_cut_short(tmp_path, "tools_bfcl_simple_finetune.yaml", 3,
                                      ["dataset.test=3", "optimizer.params.batch_size=4"])
    half = datasets.get("bfcl_simple_python")(train_from=["multiple", "exec_simple", "exec_multiple"], fold="1/2")
    assert len(rows) == 3 and {r["id"] for r in rows} <= set(half.splits["test"]["id"])
    for row in rows:
        assert row["predicted"]["name"] == json.loads(row["functions"])[0]["name"], row
