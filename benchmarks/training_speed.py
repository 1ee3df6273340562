"""Seconds per LoRA training step on the embedded model, by how a batch is computed: every row whole
in float32 (the loop before the shared prefix), the rows' common prompt prefix run once (float32),
that with bfloat16 products (`precision: bfloat16`; under autocast alone, then as `train` runs it: the
frozen weights kept in bfloat16 and plain attention), and LoRA in the top 10 of the 30 blocks only
(`layers: 10`: the backward pass stops below them), and batches of prompts of similar length
(`group_by_length`). The same batches of the router's real training prompts, drawn as a run draws them
(a seeded sample of the train split, in `train`'s order), go through each in turn, in one process, so all
see the same machine load; the loss of each batch is compared too (the shared prefix must not change it;
fewer LoRA blocks start from the same loss). The grouped way takes its batches from the same pairs cut by
length (one window of 50 batches), so its losses are of other batches and not compared.

    python benchmarks/training_speed.py                 # CLINC150 domains, BANKING77 and the hinted tasks
    python benchmarks/training_speed.py --batches 4
    python benchmarks/training_speed.py --label avx2     # its own section ("Finetune-speed-avx2"), another CPU's
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = "experiments/routing_clinc150_finetune.yaml"
# (name, shared prefix, bfloat16 products, LoRA blocks from the top: None = all, frozen weights kept in bfloat16
# and plain attention: what `train` runs in bfloat16 since 3c984e3, batches of similar length)
MODES = [("whole rows, float32", False, False, None, False, False),
         ("shared prefix, float32", True, False, None, False, False),
         ("shared prefix, float32, batches of similar length", True, False, None, False, True),
         ("shared prefix, bfloat16 products", True, True, None, False, False),
         ("shared prefix, bfloat16, no weight casts, plain attention", True, True, None, True, False),
         ("shared prefix, bfloat16, no weight casts, plain attention, batches of similar length",
          True, True, None, True, True),
         ("shared prefix, float32, LoRA in the top 10 blocks", True, False, 10, False, False),
         ("shared prefix, bfloat16, LoRA in the top 10 blocks", True, True, 10, False, False),
         ("shared prefix, bfloat16, no weight casts, plain attention, top 10 blocks", True, True, 10, True, False)]
# the BANKING77 rows' prompts: label order, the guess shown from p = 0.5 on (hidden from 80% of training prompts)
HINTED = ["program.params.candidates=10", "program.params.candidate_order=label", "program.params.ranker_hint=true",
          "program.params.hint_from=0.5", "program.params.hint_dropout=0.8"]
# (task, spec overrides, share of --batches)
TASKS = [("CLINC150 domains (10 labels in the prompt)", [], 1.0),
         ("BANKING77 (77 labels in the prompt)", ["dataset.name=banking77"], 0.5),
         ("CLINC150 intents (10 nearest labels + the ranker's guess)",
          ["dataset.name=clinc150_intents", "program.params.candidates=10", "program.params.candidate_order=label",
           "program.params.ranker_hint=true"], 0.5),
         ("BANKING77 (10 nearest labels + the ranker's guess)", ["dataset.name=banking77", *HINTED], 0.5),
         ("BANKING77 (5 nearest labels + the ranker's guess)",
          ["dataset.name=banking77", *HINTED, "program.params.candidates=5"], 0.5)]


def training_pairs(spec, program, examples: list) -> list:
    """The pairs a run of `spec` trains on: rendered by the spec's prompt adapter (`lm.adapter`), as
    `workbench run` configures it, not by DSPy's default adapter, whose prompts are several times longer."""
    import dspy

    from workbench.finetune.pairs import build_pairs
    from workbench.lm.adapters import build_adapter

    with dspy.context(adapter=build_adapter(spec.lm.adapter)):
        return build_pairs(program, examples)


def measure(overrides: list[str], modes: list, batches: int, batch_size: int) -> dict:
    import copy

    import torch
    from peft import get_peft_model

    import workbench
    from workbench.finetune.lowp import bfloat16_steps
    from workbench.finetune.train import (GROUP_WINDOW, TrainConfig, _batches, _collate, _shared_prefix, encode,
                                          load_base, lora_config, step_loss)
    from workbench.lm.models import resolve_model_path
    from workbench.runner import prepare

    spec = workbench.load_spec(ROOT / SPEC, overrides)
    prepared = prepare(spec)
    # a run's batches, not the split's first examples (BANKING77's are shorter than its average: 150 vs 157 tokens)
    examples = random.Random(0).sample(list(prepared.trainset), GROUP_WINDOW * batch_size)
    pairs = training_pairs(spec, prepared.program, examples)
    tokenizer, base = load_base(resolve_model_path(spec.lm.model))
    models = {}
    for layers in sorted({m[3] for m in modes}, key=lambda n: n or 0):  # one LoRA model per block count
        torch.manual_seed(0)
        config = lora_config(TrainConfig(layers=layers), base.config.num_hidden_layers)
        models[layers] = get_peft_model(copy.deepcopy(base), config).train()
    encoded = [encode(tokenizer, p) for p in pairs]
    lengths = [len(ids) for ids, _ in encoded]
    drawn = {False: _batches(len(encoded), batch_size, 0, GROUP_WINDOW)[:batches + 1],
             True: _batches(len(encoded), batch_size, 0, GROUP_WINDOW, lengths=lengths)[:batches + 1]}
    padding = {}  # of the tokens a step computes after the shared prefix, the share that is padding
    for by_length, drawn_batches in drawn.items():
        masks = [_collate([encoded[i] for i in b], 0)[1] for b in drawn_batches]
        padding[by_length] = 1 - sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
    seconds = {name: 0.0 for name, *_ in modes}
    losses: dict[str, list[float]] = {name: [] for name, *_ in modes}
    shared = []
    for b in range(batches + 1):  # the first batch warms up and is not counted
        shared.append(_shared_prefix([encoded[i] for i in drawn[False][b]]))
        for name, share, low, layers, fast, by_length in modes:
            rows = [encoded[i] for i in drawn[by_length][b]]
            model = models[layers]
            with bfloat16_steps(model, fast):  # its casts of the weights are once per training, not timed here
                start = time.perf_counter()
                loss, _ = step_loss(model, rows, tokenizer.pad_token_id or 0, bfloat16=low, share=share)
                loss.backward()
                model.zero_grad(set_to_none=True)
                if b:
                    seconds[name] += time.perf_counter() - start
                    losses[name].append(loss.item())
    whole = losses[modes[0][0]]
    grouped = {name for name, *_, g in modes if g}
    return {"seconds": {k: v / batches for k, v in seconds.items()},
            "loss_gap": {k: None if k in grouped else max(abs(a - w) / w for a, w in zip(v, whole))
                         for k, v in losses.items()},
            "padding": padding,
            "prompt": sum(start for _, start in encoded) / len(encoded), "shared": sum(shared) / len(shared),
            "n": batches, "batch_size": batch_size}


def report(results: list[tuple[str, dict]], label: str = "") -> str:
    from benchmarks.results import table
    from workbench.finetune.train import resolve_precision

    native = resolve_precision("auto") == "bfloat16"

    rows = []
    for task, r in results:
        base = r["seconds"].get(MODES[0][0])
        for name, s in r["seconds"].items():
            gap = r["loss_gap"][name]
            rows.append([task, name, f"{s:.2f}", f"{base / s:.2f}" if base else "–",
                         f"{gap:.1e}" if gap is not None else "– (other batches)"])
    notes = "; ".join(f"{task}: prompts of {r['prompt']:.0f} tokens on average, {r['shared']:.0f} shared by a batch's "
                      f"rows, padding {r['padding'][False]:.0%} of a batch's tokens ({r['padding'][True]:.0%} "
                      f"grouped by length), n = {r['n']} batches of {r['batch_size']}" for task, r in results)
    from benchmarks.finetune import cpu

    heading = f"Finetune-speed-{label}" if label else "Finetune-speed"
    machine, chosen = cpu().rsplit(", ", 1)
    return (f"## {heading}: seconds per LoRA training step, by how a batch is computed, on a {machine} "
            f"(`precision: auto` takes {chosen} there)\n\n"
            + table(["task", "batch computed as", "s/step", "speed-up vs whole rows",
                     "largest relative loss gap vs the task's first row"],
                    rows)
            + f"\n\nForward and backward of one step (LoRA r=16 on every linear layer of every block, or of the top "
              f"10 of 30; the embedded model's weights in float32), each way in turn on the same batches of "
              "a run's random order (the grouped ways on batches cut by length from the same pairs), one process; "
              "a run computes each batch once and its steps take longer (BANKING77 hint prompts: ~3.2 s a step in "
              "a loop of new batches): compare ways, not seconds with a run's; "
              f"bfloat16 where this CPU {'has' if native else 'lacks'} native bfloat16 products"
              f"{'' if native else ' (rows in bfloat16 only with --all-modes: emulated, they are ~20x slower)'}. "
              f"{notes}. The shared "
              "prefix gives the same loss (the gap is rounding); bfloat16 products give a slightly different one "
              "(frozen weights kept in bfloat16 give the same as autocast's rounding of them; plain attention "
              "differs by rounding); "
              "a fresh LoRA starts at the base model's loss wherever it sits. "
              "The prompts are the spec's (`lm.adapter: compact_json`): up to 20 allowed labels follow the message "
              "in the user turn (a narrowed list may change per query), so CLINC150's 10 domains are not shared; "
              "BANKING77's 77 are in the system message, shared by every row.\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--label", default="", help="a section of its own for this CPU (letters, digits, '-')")
    parser.add_argument("--all-modes", action="store_true",
                        help="time bfloat16 products even where the CPU lacks them natively (20x slower: hours)")
    args = parser.parse_args()
    if args.label and not args.label.replace("-", "").isalnum():
        parser.error(f"--label takes letters, digits and '-', got {args.label!r}")
    from benchmarks.results import write_sections

    from workbench.finetune.train import resolve_precision

    # emulated bfloat16 products: 96.7 s per step of 8 CLINC150 domain prompts against 4.3 s in float32 on an
    # AVX2-only EPYC (n = 4 batches); `precision: auto` never takes them there
    native = resolve_precision("auto") == "bfloat16"
    modes = [m for m in MODES if native or args.all_modes or not m[2]]
    results = []
    for task, overrides, share in TASKS:
        batches = max(2, round(args.batches * share))  # 77 labels: longer prompts, slower steps
        results.append((task, measure(overrides, modes, batches, args.batch_size)))
        print(task, results[-1][1]["seconds"], flush=True)
    write_sections([report(results, args.label)], "benchmarks/training_speed.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
