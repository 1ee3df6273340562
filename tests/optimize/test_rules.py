"""Optimizer parameter sets DSPy refuses only inside compile() are refused before any LM call:
one line naming the parameter and the spec, exit 2, no run started. The rules mirror DSPy's own
checks, so each one is also confirmed against DSPy itself here."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FAST_LM, SPEC, Store, run_cli, run_main
from workbench.optimize.rules import problem

SMALL = ["dataset.train=40", "dataset.dev=20", "dataset.test=6"]
CASES = [
    ("MIPROv2", {"auto": "light", "num_trials": 5}, "optimizer.params.num_trials", "cannot be set together with auto"),
    ("MIPROv2", {"num_candidates": 3}, "optimizer.params.num_candidates", "cannot be set together with auto: light"),
    ("MIPROv2", {"auto": None, "num_candidates": 3}, "optimizer.params.auto", "needs both num_candidates and num_trials"),
    ("MIPROv2", {"auto": "fast"}, "optimizer.params.auto", "must be one of light, medium, heavy"),
    ("MIPROv2", {"auto": "light"}, "optimizer.params.minibatch_size", "35 exceeds the 20 dev items"),
    ("GEPA", {"auto": "light", "max_metric_calls": 10}, "optimizer.params.max_metric_calls", "exactly one of"),
    ("COPRO", {"breadth": 1}, "optimizer.params.breadth", "must be greater than 1"),
    ("SIMBA", {"bsize": 64}, "optimizer.params.bsize", "64 exceeds the 40 training examples"),
    # GEPA itself resolves the selector name only inside compile(), after the base program's dev evaluation
    ("GEPA", {"component_selector": "random"}, "optimizer.params.component_selector",
     "must be one of round_robin, all"),
]


@pytest.mark.parametrize("name, params, field, needle", CASES)
def test_refused_in_one_line_before_any_lm_call(name, params, field, needle, tmp_path):
    store = Store(tmp_path / "mlruns")
    sets = [*SMALL, *FAST_LM, *store.overrides, f"optimizer.name={name}", f"optimizer.params={json.dumps(params)}"]
    result = run_main("run", str(SPEC), *[a for o in sets for a in ("--set", o)])
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: {SPEC}: {field}: {name}: ") and needle in lines[-1], lines[-1]
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in result.stderr
    assert not store.runs()


def test_a_refusal_comes_before_dspy_is_imported_in_a_real_subprocess(tmp_path):
    """The first check with a cold cache loads the registries once and indexes them (whichever
    test ran first on this worker decides which one that is); every later check reads the index."""
    args = ("run", str(SPEC), "--set", "optimizer.name=MIPROv2", "--set",
            'optimizer.params={"auto": "light", "num_trials": 5}', "--set", "tracking.enabled=false")
    env = {"WORKBENCH_CACHE": str(tmp_path / "cache"), "PYTHONPROFILEIMPORTTIME": "1"}
    cold = run_cli(*args, env=env)
    assert cold.returncode == 2 and "| dspy" in cold.stderr  # no index yet: the registries were imported
    assert (tmp_path / "cache" / "registry-index.json").is_file()
    result = run_cli(*args, env=env)
    assert result.returncode == 2 and "cannot be set together with auto" in result.stderr
    assert " dspy\n" not in result.stderr and "| dspy" not in result.stderr  # refused by the spec check alone


DSPY_SAYS = {  # what DSPy 3.4 itself raises for the same sets
    0: "num_candidates and num_trials cannot be set", 1: "num_candidates and num_trials cannot be set",
    2: "num_trials must also be provided", 3: "Invalid value for auto", 5: "Exactly one of", 6: "Breadth must be",
}


@pytest.mark.parametrize("case", sorted(DSPY_SAYS))
def test_dspy_itself_refuses_what_the_rules_refuse(case):
    """The rules are not stricter than DSPy: each refused set also fails in DSPy's own code, with
    DSPy's own message (no LM is called: these fail before the first call)."""
    import dspy

    name, params, _, _ = CASES[case]
    assert problem(name, params, train=40, val=20) is not None
    program = dspy.Predict("question -> answer")
    trainset = [dspy.Example(question=f"q{i}", answer="a").with_inputs("question") for i in range(4)]
    lm = dspy.LM("openai/none", api_base="http://127.0.0.1:9/v1", num_retries=0)
    metric = (lambda *a, **k: 1.0)
    init = {k: v for k, v in params.items()
            if k in ("auto", "breadth", "max_metric_calls", "max_full_evals", "num_candidates")}
    rest = {k: v for k, v in params.items() if k not in init}
    with pytest.raises((ValueError, AssertionError)) as refused:
        if name == "MIPROv2":
            cls = dspy.MIPROv2(metric=metric, prompt_model=lm, task_model=lm, **init)
            cls.compile(program, trainset=trainset, valset=trainset, **rest)
        elif name == "GEPA":
            dspy.GEPA(metric=metric, reflection_lm=lm, **init)
        else:
            dspy.COPRO(metric=metric, prompt_model=lm, **init)
    assert DSPY_SAYS[case].lower() in str(refused.value).lower()
