"""Optimizer sequences (`optimizer: [step, step]`): each step compiles the previous step's
program; names, parameters and DSPy's refusals are checked per step before any LM call; the
estimate, the tag and the dev score speak for the whole sequence. Recorded LM, real CLI."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import FAST_LM, SPEC, Store, run_cli, run_main

MIPRO_INSTRUCTIONS = {"name": "MIPROv2", "params": {"auto": None, "num_candidates": 2, "num_trials": 2,
                                                    "minibatch": False, "max_bootstrapped_demos": 0,
                                                    "max_labeled_demos": 0}}


def _spec(path, steps) -> str:
    data = yaml.safe_load(SPEC.read_text())
    data["optimizer"] = steps
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def test_retrieval_demos_then_instruction_search_runs_as_one_optimizer(tmp_path):
    store = Store(tmp_path / "mlruns")
    spec = _spec(tmp_path / "seq.yaml", [{"name": "retrieval_demos", "params": {"k": 3}}, MIPRO_INSTRUCTIONS])
    result = run_cli("run", spec, *_sets("dataset.train=60", "dataset.dev=12", "dataset.test=10",
                                                    "optimizer.prompt_max_tokens=96", *FAST_LM, *store.overrides))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "retrieval_demos: no LM calls then MIPROv2 manual: 2 trials on 12 dev items" in result.stderr
    assert "MIPROv2 selects on the dev split: 12 items" in result.stderr  # dev advice comes from the step
    run_id = next(x for x in result.stdout.splitlines() if x.startswith("MLflow run ")).split()[2]
    data = store.client().get_run(run_id).data
    assert data.tags["workbench.optimizer"] == "retrieval_demos+MIPROv2"
    assert data.metrics["compile_lm_calls"] > 0 and 0 <= data.metrics["dev_score"] <= 1
    state = data.params  # the spec's steps are logged like any parameter
    assert "retrieval_demos" in state["optimizer.params.steps"]


@pytest.mark.parametrize("steps, field, needle", [
    ([], "optimizer.params.steps", "non-empty list of steps"),
    ([{"name": "retrieval_demo"}], "optimizer.params.steps.0.name", "did you mean 'retrieval_demos'"),
    ([{"name": "retrieval_demos", "params": {"kk": 2}}], "optimizer.params.steps.0.params.kk", "unknown parameter"),
    ([{"name": "retrieval_demos"}, {"name": "MIPROv2", "params": {"auto": "light", "num_trials": 3}}],
     "optimizer.params.steps.1.params.num_trials", "cannot be set together with auto"),
    ([{"name": "sequence", "params": {"steps": []}}], "optimizer.params.steps.0.name", "cannot contain a sequence"),
    (["retrieval_demos"], "optimizer.params.steps.0", "a mapping with name"),
])
def test_a_bad_step_is_one_line_naming_it(steps, field, needle, tmp_path):
    spec = _spec(tmp_path / "bad.yaml", steps)
    result = run_main("run", spec, *_sets(*FAST_LM, "tracking.enabled=false"))
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {spec}: {field}: ") and needle in line, line


def test_what_a_finetune_step_trained_reaches_the_run(monkeypatch):
    """A step runs on a copy of the compile context; its training report (logged as finetune.*
    metrics) must come back to the sequence's own context, which the runner logs."""
    import dspy

    from workbench.optimize import CompileContext
    from workbench.optimize.sequence import sequence
    from workbench.registry import optimizers

    def fake_finetune(ctx, **_):
        ctx.finetune_report = {"steps": 7, "train_seconds": 1.5}
        return ctx.student

    optimizers.get("none")  # the registry discovers its entries on first use
    monkeypatch.setattr(optimizers, "_entries", {**optimizers._entries, "finetune": fake_finetune})
    ctx = CompileContext(student=dspy.Predict("question -> answer"), trainset=[], valset=[], metric=None,
                         feedback_metric=None, lm=None, prompt_lm=None, reflection_lm=None, seed=0, threads=1)
    sequence(ctx, steps=[{"name": "finetune"}, {"name": "none"}])
    assert ctx.finetune_report == {"steps": 7, "train_seconds": 1.5}
