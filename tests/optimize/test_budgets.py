"""Run budgets: an estimate before anything runs, a refusal when it exceeds the budget, and a
budget that stops compile (the best program so far is evaluated within the reserve) or the
evaluation (partial table). Recorded LM, in-process runs and real CLI subprocesses."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FAST_LM, SPEC, Store, run_cli, run_main
from workbench.budget import Meter, BudgetExhausted
from workbench.runner import run
from workbench.spec import load_spec

SMALL = ["dataset.train=40", "dataset.dev=20", "dataset.test=24", "lm.cache=false"]
MIPRO = ["optimizer.name=MIPROv2", "optimizer.prompt_max_tokens=96",
         'optimizer.params={"auto": null, "num_candidates": 3, "num_trials": 6, "minibatch": false, '
         '"max_bootstrapped_demos": 1, "max_labeled_demos": 1}']


def _run_id(stdout: str) -> str:
    return next(x for x in stdout.splitlines() if x.startswith("run_id=")).split()[0][len("run_id="):]


def test_the_meter_admits_calls_up_to_the_cap_then_refuses():
    meter = Meter(max_lm_calls=5)
    meter.cap("compile", calls=3)
    for _ in range(3):
        meter.check()
    with pytest.raises(BudgetExhausted, match="LM-call compile share of the budget reached"):
        meter.check()
    meter.cap("evaluation")
    meter.check(), meter.check()
    with pytest.raises(BudgetExhausted, match=r"LM-call budget reached \(5 of 5\)"):
        meter.check()
    priced = Meter(max_cost_usd=0.001)
    priced.add(1000, 100, (0.5, 2.0))  # $0.0005 + $0.0002
    priced.check()
    priced.add(1000, 100, (0.5, 2.0))
    with pytest.raises(BudgetExhausted, match="cost budget"):
        priced.check()


@pytest.mark.parametrize("args, needle", [
    (["--max-lm-calls", "0"], "--max-lm-calls: must be greater than 0"),
    (["--max-tokens", "many"], "--max-tokens: must be a positive int, got 'many'"),
    (["--timeout", "-5"], "--timeout: must be greater than 0"),
    (["--max-cost-usd", "1", "--set", "lm.backend=openai", "--set", "lm.api_base=http://127.0.0.1:9/v1",
      "--set", "lm.preflight=false"], "a cost budget needs the price of"),
    (["--max-lm-calls", "10"], "the evaluation alone plans 24 LM calls, over the budget of 10"),
    (["--max-lm-calls", "60", *[a for o in MIPRO for a in ("--set", o)]], "over the budget of 60; compile would get 36"),
])
def test_bad_budgets_are_one_line_before_any_lm_call(args, needle, tmp_path):
    store = Store(tmp_path / "mlruns")
    result = run_main("run", str(SPEC), *[a for o in [*SMALL, *FAST_LM, *store.overrides] for a in ("--set", o)], *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert needle in lines[-1] and lines[-1].startswith("error:") and "Traceback" not in result.stderr
    assert sum(line.startswith("error:") for line in lines) == 1  # before it: the plan and dev advice only
    assert not store.runs()  # nothing started


def test_a_budget_stops_mipro_and_the_run_still_finishes(tmp_path):
    store = Store(tmp_path / "mlruns")
    result = run_main("run", str(SPEC), "--quiet", *[a for o in [*SMALL, *FAST_LM, *MIPRO, *store.overrides]
                                                    for a in ("--set", o)], "--max-lm-calls", "70",
                     "--allow-over-estimate")
    assert result.returncode == 0, result.stderr
    run_id = next(x for x in result.stdout.splitlines() if x.startswith("run_id=")).split()[0][len("run_id="):]
    run_info = store.client().get_run(run_id)
    assert run_info.info.status == "FINISHED"
    run_data = run_info.data
    assert run_data.tags["workbench.budget_exhausted"].startswith("compile: LM-call compile share")
    assert run_data.metrics["spend_lm_calls"] <= 70 and run_data.metrics["n_examples"] == 24
    assert run_data.metrics["failure_rate"] == 0  # the evaluation ran within its reserve
    assert "evaluating the best program it found so far" in result.stderr  # MIPROv2 returned its best trial


def test_an_evaluation_that_runs_out_finishes_with_its_partial_table_and_retry_failed_completes_it(tmp_path):
    store = Store(tmp_path / "mlruns")
    sets = [a for o in [*SMALL, *FAST_LM, "optimizer.name=none", "optimizer.params={}", *store.overrides]
            for a in ("--set", o)]
    refused = run_main("run", str(SPEC), *sets, "--max-lm-calls", "10")
    assert refused.returncode == 2 and "the evaluation alone plans 24 LM calls, over the budget of 10" in refused.stderr
    result = run_main("run", str(SPEC), "--quiet", *sets, "--max-lm-calls", "10", "--allow-over-estimate")
    assert result.returncode == 0, result.stderr
    assert "evaluation stopped after 10 of 24 examples: LM-call budget reached (10 of 10)" in result.stderr
    run_id = next(x for x in result.stdout.splitlines() if x.startswith("run_id=")).split()[0][len("run_id="):]
    finished = store.client().get_run(run_id)
    assert finished.info.status == "FINISHED"
    tags, metrics = finished.data.tags, finished.data.metrics
    assert tags["workbench.partial"] == "true" and tags["workbench.budget_exhausted"].startswith("evaluation: ")
    assert metrics["n_examples"] == 10 and metrics["planned_n_examples"] == 24
    assert metrics["spend_lm_calls"] <= 10 and metrics["failure_rate"] == 0  # no row was cut mid-call
    retried = run_main("eval", "--retry-failed", run_id, "--quiet", "--tracking-uri", store.uri, "--max-lm-calls", "30")
    assert retried.returncode == 0, retried.stderr
    assert " n=24 " in retried.stdout
    compared = run_main("compare", run_id, _run_id(retried.stdout), "--tracking-uri", store.uri)
    assert compared.returncode == 2  # 10 items against 24: not one evaluation set, and the line says why
    assert "partial: 10 of 24" in compared.stderr


def test_an_evaluation_stopped_before_its_first_item_is_a_failure(tmp_path):
    spec = load_spec(SPEC, [*SMALL, *FAST_LM, "tracking.enabled=false", "optimizer.name=none", "optimizer.params={}",
                            "budget.timeout_s=0.001"])
    from workbench.evaluate import EvaluationStopped

    with pytest.raises(EvaluationStopped, match="time budget reached") as stopped:
        run(spec)
    assert stopped.value.partial is None or stopped.value.partial.n == 0


def test_the_estimate_is_printed_before_the_run(tmp_path):
    store = Store(tmp_path / "mlruns")
    result = run_main("run", str(SPEC), *[a for o in [*SMALL, *FAST_LM, *MIPRO, *store.overrides]
                                         for a in ("--set", o)])
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith("planned LM calls"))
    planned = int(line.split("~")[1].split()[0].replace(",", ""))
    client = store.client()
    [parent] = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  filter_string="tags.`workbench.kind` = 'run'")
    data = parent.data.metrics
    spent = data["lm_calls"] + data.get("compile_lm_calls", 0)
    print(line, "| spent", spent)
    assert json.dumps(planned) and planned >= spent * 0.5  # an estimate: the right order of magnitude


def test_an_optimizer_that_selects_on_dev_logs_its_dev_score_and_warns_on_a_small_dev(tmp_path):
    store = Store(tmp_path / "mlruns")
    result = run_main("run", str(SPEC), *[a for o in [*SMALL, *FAST_LM, *MIPRO, *store.overrides]
                                         for a in ("--set", o)])
    assert result.returncode == 0, result.stderr
    assert "MIPROv2 selects on the dev split: 20 items, so score differences under ±0.22 are noise" in result.stderr
    assert "to see a difference of 0.05, use about 385 (dataset.dev)" in result.stderr
    assert "plans for about 100 dev items and gets 20" in result.stderr
    client = store.client()
    [parent] = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  filter_string="tags.`workbench.kind` = 'run'")
    metrics = parent.data.metrics
    assert 0 <= metrics["dev_score"] <= 1 and abs(metrics["dev_test_gap"] - (metrics["dev_score"] - metrics["score"])) < 1e-9


@pytest.mark.slow
def test_on_the_embedded_lm_a_budget_stopped_mipro_run_finishes_within_budget_with_a_dev_score(tmp_path):
    """The real model, real store, real CLI: compile stops at its share, the evaluation runs in its
    reserve, the run ends FINISHED with its spend within the budget (+1 call in flight)."""
    store = Store(tmp_path / "mlruns")
    small = ["dataset.train=40", "dataset.dev=20", "dataset.test=10", "lm.cache=false"]
    result = run_cli("run", str(SPEC), "--quiet", *[a for o in [*small, *MIPRO, *store.overrides] for a in ("--set", o)],
                     "--max-lm-calls", "45", "--allow-over-estimate")
    assert result.returncode == 0, result.stderr
    run_id = next(x for x in result.stdout.splitlines() if x.startswith("run_id=")).split()[0][len("run_id="):]
    run_info = store.client().get_run(run_id)
    metrics, tags = run_info.data.metrics, run_info.data.tags
    assert run_info.info.status == "FINISHED" and tags["workbench.budget_exhausted"].startswith("compile: ")
    assert metrics["spend_lm_calls"] <= 46 and metrics["n_examples"] == 10 and metrics["failure_rate"] == 0
    print("spend", metrics["spend_lm_calls"], "score", metrics["score"], "dev", metrics.get("dev_score"))


def test_a_call_refused_by_the_budget_fails_at_once_never_retried():
    """DSPy retries transport errors with backoff; a spent budget is not transient, so a refused
    call must fail immediately (else every refused call of an optimizer costs seconds)."""
    import time

    from workbench.lm import build_lm

    spec = load_spec(SPEC, [*FAST_LM, "tracking.enabled=false", "lm.cache=false"])
    lm = build_lm(spec.lm)
    meter = Meter(max_lm_calls=1)
    meter.check()  # the one call the budget allows is spent
    lm.engine.budget = meter
    start = time.perf_counter()
    with pytest.raises(Exception) as refused:
        lm("hello")
    assert "LM-call budget reached (1 of 1)" in str(refused.value)
    assert time.perf_counter() - start < 0.5 and meter.spent.lm_calls == 1
