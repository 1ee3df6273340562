"""How many LM calls a run plans, before it makes any: compile (per optimizer, from its own
settings) plus evaluation (items x calls per item).

Figures are planned program calls times the program's LM calls per example, plus the
optimizers' own proposal calls; cache hits make the real count lower. MIPROv2 and GEPA plan
from `auto` like DSPy does (candidates, trials, minibatches of 35, a full evaluation every
5 trials); the bootstrap optimizers are bounded by the examples they may try; COPRO by
breadth x depth over the train set; SIMBA by steps x minibatch x candidates plus its final
scoring of the step winners on the whole train set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from workbench.optimize.reached import REACHED_ONLY

MIPRO_AUTO = {"light": (6, 100), "medium": (12, 300), "heavy": (18, 1000)}  # candidates, validation items
GEPA_AUTO = {"light": 6, "medium": 12, "heavy": 18}
MINIBATCH, FULL_EVAL_EVERY = 35, 5
FREE = ("none", "retrieval_demos", "LabeledFewShot")


@dataclass
class Estimate:
    compile_calls: int
    eval_calls: int
    how: str

    @property
    def total(self) -> int:
        return self.compile_calls + self.eval_calls


def calls_per_example(program: Any) -> int:
    """The program's LM calls for one example (its `lm_calls_per_example`, else one per predictor)."""
    declared = getattr(program, "lm_calls_per_example", None)
    if declared is not None:
        return int(declared)
    return max(len(list(program.named_predictors())), 1)


def _trials(predictors: int, candidates: int, zero_shot: bool) -> int:
    variables = predictors * (1 if zero_shot else 2)
    return int(max(2 * variables * math.log2(candidates), 1.5 * candidates))


def _minibatched(trials: int, val: int) -> int:
    """Minibatch trials plus DSPy's full evaluations: the program as given, one every 5 trials,
    and one more at the end when the trials are not a multiple of 5."""
    full = 1 + trials // FULL_EVAL_EVERY + (1 if trials % FULL_EVAL_EVERY else 0)
    return MINIBATCH * trials + val * full


def compile_calls(name: str, params: dict[str, Any], *, predictors: int, per_example: int, train: int,
                  val: int, reached: int | None = None) -> tuple[int, str]:
    """(planned calls, how they were counted) for optimizer `name` with `params`; `reached`: the
    predictors the training data can reach, when fewer than `predictors` (COPRO and MIPROv2 are shown
    only those: workbench/optimize/reached.py)."""
    p = params
    if name in REACHED_ONLY:
        predictors = reached or predictors
    if name in FREE:
        return 0, f"{name}: no LM calls"
    if name in ("finetune", "BootstrapFinetune"):
        if p.get("source", "bootstrap" if name == "BootstrapFinetune" else "gold") == "gold":
            return 0, f"{name}: no LM calls (gold answers; training runs on the CPU)"
        examples = min(train, int(p["max_examples"])) if p.get("max_examples") else train
        return examples * per_example, f"{name}: {examples} train items answered by the LM, then training"
    def bootstrap_calls(demos: int) -> int:  # up to 4 tries per wanted trace, per round
        return min(train, max(demos * 4, demos)) * per_example * int(p.get("max_rounds", 1))

    bootstrap = bootstrap_calls(int(p.get("max_bootstrapped_demos", 4)))
    if name == "BootstrapFewShot":
        return bootstrap, f"bootstrapping up to {bootstrap // per_example} train items"
    if name == "KNNFewShot":
        return 0, "KNNFewShot bootstraps per query, counted in the evaluation"
    if name == "BootstrapFewShotWithRandomSearch":
        programs = int(p.get("num_candidate_programs", 16)) + 3
        calls = programs * (bootstrap + val * per_example)
        return calls, f"{programs} candidates x (bootstrap + {val} dev items)"
    if name == "MIPROv2":
        auto = p.get("auto", "light")
        zero_shot = int(p.get("max_bootstrapped_demos", 4)) == 0 and int(p.get("max_labeled_demos", 4)) == 0
        if auto:
            n, val_size = MIPRO_AUTO[auto]
            val = min(val, val_size)
            trials = _trials(predictors, n, zero_shot)
            instructions = n if zero_shot else n // 2
        else:
            n = int(p.get("num_candidates", 6))
            trials, instructions = int(p.get("num_trials", _trials(predictors, n, zero_shot))), n
        proposals = 10 + instructions * predictors + predictors + 1
        batched = val > MINIBATCH and p.get("minibatch", True)
        # the program as given is scored on the whole dev set first, then each trial
        evaluation = (_minibatched(trials, val) if batched else val * (trials + 1)) * per_example
        # zero-shot still bootstraps its candidate sets, up to 3 traces each, to show the proposer examples
        bootstrap_all = n * (bootstrap_calls(3) if zero_shot else bootstrap)
        return (proposals + evaluation + bootstrap_all,
                f"MIPROv2 {auto or 'manual'}: {trials} trials on {val} dev items, {proposals} proposals")
    if name == "GEPA":
        if p.get("max_metric_calls"):
            metric_calls = int(p["max_metric_calls"])
        elif p.get("max_full_evals"):
            metric_calls = int(p["max_full_evals"]) * (train + val)
        else:
            n = GEPA_AUTO[p.get("auto", "light")]
            trials = _trials(predictors, n, zero_shot=False)
            full_evals = (trials + 1) // FULL_EVAL_EVERY + 1 + (1 if trials < FULL_EVAL_EVERY else 0)
            metric_calls = val + n * 5 + trials * MINIBATCH + full_evals * val
        reflections = max(metric_calls // 3, 1) // max(int(p.get("reflection_minibatch_size", 3)), 1)
        return (metric_calls * per_example + reflections,
                f"GEPA: {metric_calls} program runs + ~{reflections} reflections")
    if name == "COPRO":
        # each depth scores `breadth` new candidates per predictor; with several predictors DSPy's COPRO
        # re-scores every candidate proposed so far (breadth x d at depth d)
        breadth, depth = int(p.get("breadth", 10)), int(p.get("depth", 3))
        scored = breadth * depth if predictors == 1 else predictors * breadth * depth * (depth + 1) // 2
        # proposals: breadth - 1 completions first, then breadth per later depth, each one LM call on a
        # backend without `n` (the embedded LM): CLINC150's COPRO row made 8 x 100 + 7
        proposals = predictors * (breadth - 1 + breadth * (depth - 1))
        return (scored * train * per_example + proposals,
                f"COPRO: {scored} candidate scorings over {train} train items")
    if name == "SIMBA":
        steps, bsize, candidates = int(p.get("max_steps", 8)), min(int(p.get("bsize", 32)), train), \
            int(p.get("num_candidates", 6))
        # per step: `candidates` sampled runs of each minibatch item, then up to candidates + 1 new
        # programs (one rule proposal each) scored on the same minibatch; at the end up to
        # candidates + 1 of the step winners are scored on the whole train set
        per_step = bsize * (2 * candidates + 1) * per_example + candidates + 1
        final = min(candidates, steps) + 1
        return (steps * per_step + final * train * per_example,
                f"SIMBA: {steps} steps x {bsize} items x {candidates} candidates, "
                f"then {final} programs x {train} train items")
    return 0, f"{name}: not estimated"


def estimate(spec, prepared) -> Estimate:
    program = prepared.program
    per_example = calls_per_example(program)
    predictors = max(len(list(program.named_predictors())), 1)
    from workbench.optimize.sequence import steps_of
    from workbench.program_contract import predictors_used

    reached = len(predictors_used(program, prepared.compile_trainset)) or None
    counted = [compile_calls(name, params, predictors=predictors, per_example=per_example, reached=reached,
                             train=len(prepared.compile_trainset), val=len(prepared.valset))
               for name, params in steps_of(spec.optimizer.name, dict(spec.optimizer.params))]
    calls, how = sum(c for c, _ in counted), " then ".join(h for _, h in counted)
    eval_calls = len(prepared.evalset) * per_example
    if spec.optimizer.name == "KNNFewShot":
        eval_calls *= 1 + int(spec.optimizer.params.get("k", 5))
    return Estimate(calls, eval_calls, how)
