"""Spec -> data splits -> program -> compile -> evaluate -> MLflow run.

`prepare()` does every check a user can fail (names, parameters, data files, split sizes,
the LM) before anything is written; `run()` then compiles and evaluates inside one MLflow
run, logging params, metrics, the per-example table, the program's JSON state and its
rendered prompts. `workbench eval` is `run()` with a saved program instead of compiling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError, LMError

from workbench import budget, registry, resume
from workbench import program_contract as contract
from workbench.baselines import BASELINES, BaselineScore
from workbench.console import Reporter
from workbench.data import TaskData
from workbench.data.checks import DataChecks
from workbench.data.loading import LoadedData, load_data, load_dataset  # noqa: F401  (load_dataset: API)
from workbench.errors import RunFailed
from workbench.evaluate import EvalResult, EvaluationStopped, TooManyFailures, evaluate, merge
from workbench.genai import RunObjects
from workbench.lm import build_lm
from workbench.lm.adapters import build_adapter
from workbench.lm.preflight import preflight
from workbench.optimize import CompileContext, dev_score, optimizer_seed, rules
from workbench.optimize.demo_check import unshown_demos
from workbench.optimize.sequence import label as optimizer_label
from workbench.run_logging import autolog_trials, log_lora, log_partial, log_results, summaries
from workbench.run_parts import _restrict, build_program, eval_fingerprint, load_program_state, metric_fns, \
    optimizer_sample
from workbench.spec import Spec
from workbench.tracking import RUN_KIND_TAG, tracked_run

log = logging.getLogger(__name__)


class CompileError(RunFailed):
    """The optimizer could not finish (its LM calls failed); the run is marked FAILED."""


class EndpointFailed(RunFailed):
    """Too many examples were lost to LM call failures: the score is the endpoint's, not the model's."""


def _arm_breakers(lms: list[dspy.LM], spec: Spec) -> None:
    """Every LM of the run stops calling after eval.max_consecutive_lm_errors endpoint failures in a row."""
    for lm in lms:
        lm.engine.breaker.limit = spec.eval.max_consecutive_lm_errors


@dataclass
class Prepared:
    spec: Spec
    data: TaskData
    program: dspy.Module
    trainset: list[dspy.Example]
    valset: list[dspy.Example]
    evalset: list[dspy.Example]
    checks: DataChecks | None = None
    subset: Subset | None = None
    budget: Any = None  # workbench.budget.Plan when the spec sets a budget
    dev_score: float | None = None  # the optimizer's own score of its choice on dev, where it reports one
    planned_lm_calls: int | None = None  # the estimate printed before the run
    finetune_report: dict | None = None  # what `finetune` trained (pairs, steps, loss, seconds) or reused
    optimizer_train: list[dspy.Example] | None = None  # optimizer.max_train's sample (None: all of trainset)

    @property
    def compile_trainset(self) -> list[dspy.Example]:
        """The training examples the optimizer sees: optimizer.max_train's seeded sample, else all."""
        return self.trainset if self.optimizer_train is None else self.optimizer_train


@dataclass
class RunHooks:
    """For code that drives runs (sweeps): extra tags, and callbacks with the LM once built,
    the MLflow run once started, and evaluation progress (done, total, mean score, LM calls)."""

    tags: dict[str, str] = field(default_factory=dict)
    kind: str | None = None  # the run's workbench.kind (default: run, or eval for a loaded program)
    on_lm: Callable[[dspy.LM], None] | None = None
    on_run: Callable[[Any], None] | None = None
    on_progress: Callable[[int, int, float, int], None] | None = None


@dataclass
class Subset:
    """Evaluate only these example ids and merge the result with `kept` (the rows of an
    earlier run on the same items that need no re-run): `workbench eval --retry-failed`."""

    ids: set[str]
    kept: Any  # pandas.DataFrame of the earlier run's per-example rows
    order: list[str] = field(default_factory=list)  # the full evaluation set's ids, in order


@dataclass
class RunOutcome:
    run_id: str | None
    result: EvalResult
    baselines: list[BaselineScore] = field(default_factory=list)
    compile_seconds: float = 0.0
    compile_lm_calls: int = 0
    program_path: Path | None = None
    summary_metrics: dict[str, float] = field(default_factory=dict)
    program: dspy.Module | None = None
    dev_score: float | None = None  # the optimizer's own dev score of the program it chose, where reported
    stopped: str = ""  # why the evaluation stopped before its last item (a budget), else ""


def prepare(spec: Spec, loaded: LoadedData | None = None, eval_ids: list[str] | None = None) -> Prepared:
    """`eval_ids`: evaluate exactly these examples of the split, in this order (a gate pairs
    its candidate with the baseline's items); an id the split lacks is the user's error."""
    loaded = loaded or load_data(spec)
    data = loaded.data
    split = "test" if spec.eval.split == "test" else "validation"
    evalset = data.examples(split)
    if eval_ids is not None:
        evalset = _restrict(evalset, eval_ids, spec)
    program = build_program(spec, data)
    trainset = data.examples("train")
    return Prepared(spec, data, program, trainset, data.examples("validation"), evalset, checks=loaded.checks,
                    optimizer_train=optimizer_sample(spec, trainset))


def _tags(spec: Spec, prepared: Prepared, lm: dspy.LM, kind: str) -> dict[str, str]:
    return {
        RUN_KIND_TAG: kind,
        "workbench.spec": spec.name,
        "workbench.task": spec.task,
        "workbench.program": spec.program.name,
        "workbench.optimizer": "loaded" if kind == "eval" else optimizer_label(spec.optimizer.name,
                                                                               spec.optimizer.params),
        "workbench.metric": spec.metric.name,
        "workbench.dataset": prepared.data.name,
        "workbench.dataset_fingerprint": prepared.data.fingerprint,
        "workbench.eval_split": spec.eval.split,
        "workbench.eval_fingerprint": eval_fingerprint(prepared.evalset),
        "workbench.lm": lm.model,
        resume.SPEC_TAG: resume.spec_fingerprint(spec),
    }


def _compile(prepared: Prepared, lm: dspy.LM, reflection_lm: dspy.LM | None, reporter: Reporter, tracked=None):
    spec = prepared.spec
    _, scored, with_feedback = metric_fns(spec)
    factory = registry.optimizers.get(spec.optimizer.name, file=spec.source, field="optimizer.name")
    prompt_lm = lm.copy(max_tokens=max(spec.optimizer.prompt_max_tokens, spec.lm.max_tokens))
    ctx = CompileContext(student=prepared.program, trainset=prepared.compile_trainset, valset=prepared.valset,
                         metric=scored, feedback_metric=with_feedback, lm=lm, prompt_lm=prompt_lm,
                         reflection_lm=reflection_lm or prompt_lm,
                         seed=optimizer_seed(spec),
                         threads=spec.eval.threads, source=spec.source,
                         checkpoint_dir=resume.checkpoint_dir(tracked.client, tracked.run_id)
                         if tracked and resume.needs_checkpoints(spec.optimizer.name, spec.optimizer.params) else None,
                         use_lora=_lora_switch(spec, [lm, prompt_lm]))
    usage = lm.engine.usage
    before = usage.snapshot()
    start = time.perf_counter()
    # Trials nest under the experiment's run; with tracking off, autologging would write to ./mlflow.db.
    trials = spec.tracking.enabled and spec.optimizer.name not in ("none", "retrieval_demos", "LabeledFewShot")
    plan = prepared.budget
    if plan is not None:
        plan.compile_cap()
    # Under a budget, calls refused at the cap must not abort the optimizer's own evaluations (DSPy
    # stops after settings.max_errors): a refused trial scores 0 and the best finished one is returned.
    with reporter.phase(f"compiling with {spec.optimizer.name}", lambda: usage.since(before).calls) as status, \
            autolog_trials(trials), dspy.context(**({"max_errors": 10**9} if plan is not None else {})):
        ctx.status = status
        try:
            compiled = factory(ctx, **spec.optimizer.params)
        except (AdapterParseError, LMError, RuntimeError) as exc:
            if plan is not None and plan.meter.reason:  # the budget stopped it before it returned a program
                reporter.warn(f"{spec.optimizer.name} stopped: {plan.meter.reason}; evaluating the program as written")
                return prepared.program, time.perf_counter() - start, usage.since(before).calls
            if not isinstance(exc, (AdapterParseError, LMError)):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if lm.engine.breaker.open:
                raise CompileError(f"{spec.optimizer.name} stopped: {lm.engine.breaker.reason}") from None
            raise CompileError(f"{spec.optimizer.name} stopped: the LM failed during compile "
                               f"({type(exc).__name__}: {first[:200]}); try a larger "
                               "optimizer.prompt_max_tokens or a stronger LM") from exc
    for used in (lm, reflection_lm):
        if used is not None and used.engine.breaker.open:  # optimizers swallow failed candidates
            raise CompileError(f"{spec.optimizer.name} stopped: {used.engine.breaker.reason}")
    for line in unshown_demos(compiled):  # e.g. LabeledFewShot's raw examples on a multi-stage program
        reporter.warn(f"{spec.optimizer.name}: {line}")
    prepared.dev_score = dev_score(compiled, spec.optimizer.name)
    prepared.finetune_report = ctx.finetune_report
    if plan is not None and plan.meter.reason:
        reporter.warn(f"{spec.optimizer.name} stopped early: {plan.meter.reason}; evaluating the best program it "
                      "found so far")
    return compiled, time.perf_counter() - start, usage.since(before).calls


def _lora_switch(spec: Spec, lms: list[dspy.LM]):
    """What `finetune` calls with its adapter: the run's LM (and the spec logged with the run) use it."""
    def use(path, sha256: str) -> None:
        engine = lms[0].engine
        engine.apply_lora(path, sha256)
        for each in lms:
            each.model = engine.model_id
        spec.lm.lora, spec.lm.lora_sha256 = str(path), sha256

    return use


def _baselines(prepared: Prepared, reporter: Reporter) -> list[BaselineScore]:
    """The task's classical baselines on the evaluation items, printed before any LM call:
    is an LM worth it on this data?"""
    spec = prepared.spec
    if spec.task not in BASELINES or not prepared.evalset:
        return []
    texts = [e[prepared.data.input_fields[0]] for e in prepared.evalset]
    golds = [e[prepared.data.label_field] for e in prepared.evalset]
    baselines = BASELINES[spec.task](prepared.data, texts, golds)
    reporter.info(f"classical baselines on these {len(texts)} {spec.eval.split} items: "
                  + ", ".join(f"{b.name} {b.score:.3f}" for b in baselines) + " (the LM program's score to beat)")
    return baselines


def run(spec: Spec, *, reporter: Reporter | None = None, program_path: str | Path | None = None,
        parent_run_id: str | None = None, hooks: RunHooks | None = None, loaded: LoadedData | None = None,
        subset: Subset | None = None, eval_ids: list[str] | None = None,
        resume_run_id: str | None = None) -> RunOutcome:
    """Compile (or load) and evaluate the spec's program in one tracked run (a child run of
    `parent_run_id` when given); `loaded`: the spec's data, if already loaded; `subset`: evaluate
    only some items and merge them with an earlier run's rows; `eval_ids`: evaluate exactly these;
    `resume_run_id`: continue that killed or failed run of this spec (workbench.resume)."""
    reporter = reporter or Reporter(quiet=True)
    hooks = hooks or RunHooks()
    resumed = resume.check(spec, resume_run_id, reporter) if resume_run_id else None
    preflight(spec)  # a dead endpoint, rejected key or unknown model: exit 2 before anything is written
    prepared = prepare(spec, loaded, eval_ids)
    prepared.subset = subset
    if resumed is not None:
        resume.check_data(resume_run_id, resumed, prepared.data.fingerprint, spec)
    if program_path is not None:
        load_program_state(prepared.program, program_path)
    else:  # what DSPy would refuse only inside compile, maybe after spending calls
        rules.check(spec, train=len(prepared.compile_trainset), val=len(prepared.valset))
    prepared.budget = budget.plan(spec, prepared, reporter, compiling=program_path is None)
    lm = build_lm(spec.lm, source=spec.source)
    reflection_lm = build_lm(spec.optimizer.reflection_lm, source=spec.source) if spec.optimizer.reflection_lm else None
    budget.attach(prepared.budget, [(spec.lm, lm), (spec.optimizer.reflection_lm, reflection_lm)])
    _arm_breakers([x for x in (lm, reflection_lm) if x is not None], spec)
    dspy.configure(lm=lm, adapter=build_adapter(spec.lm.adapter))
    if hooks.on_lm:
        hooks.on_lm(lm)
    kind = hooks.kind or ("run" if program_path is None else "eval")
    sampled = f" (optimizer: {len(prepared.optimizer_train)})" if prepared.optimizer_train is not None else ""
    reporter.info(f"{spec.name}: {len(prepared.trainset)} train{sampled} / {len(prepared.valset)} dev / "
                  f"{len(prepared.evalset)} {spec.eval.split} · LM {lm.model}")
    for warning in prepared.checks.warnings:
        reporter.warn(f"data: {warning}")
    tracking = spec.tracking
    if not tracking.enabled:
        return _execute(prepared, lm, reflection_lm, reporter, None, program_path, hooks.on_progress)
    run_name = tracking.run_name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    with tracked_run(tracking, kind=kind, experiment=tracking.experiment or spec.name, run_name=run_name,
                     tags={**_tags(spec, prepared, lm, kind), **hooks.tags}, parent_run_id=parent_run_id,
                     resume_run_id=resume_run_id) as tracked:
        if hooks.on_run:
            hooks.on_run(tracked)
        if resumed is None:  # a resumed run keeps its params (only its budget may differ)
            tracked.log_params(spec.flat())
        tracked.log_dict(prepared.checks.report, "data_checks.json")
        tracked.log_metrics(prepared.checks.metrics())
        if program_path is not None:
            tracked.set_tags({"workbench.loaded_program": str(program_path)})
        outcome = _execute(prepared, lm, reflection_lm, reporter, tracked, program_path, hooks.on_progress)
        outcome.run_id = tracked.run_id
        return outcome


def _stopped_by_budget(stopped: EvaluationStopped, prepared: Prepared, lm) -> bool:
    """The evaluation stopped because the run's budget ran out (not failures, not a dead endpoint),
    after at least one item."""
    return (prepared.budget is not None and bool(prepared.budget.meter.reason) and not lm.engine.breaker.reason
            and not isinstance(stopped, TooManyFailures) and stopped.partial is not None and stopped.partial.n > 0)


def _execute(prepared: Prepared, lm, reflection_lm, reporter: Reporter, tracked, program_path,
             on_progress: Callable[[int, int, float, int], None] | None = None) -> RunOutcome:
    if program_path is None:
        program, compile_seconds, compile_calls = _compile(prepared, lm, reflection_lm, reporter, tracked)
    else:
        program, compile_seconds, compile_calls = prepared.program, 0.0, 0
    if tracked is None:
        return _evaluate(prepared, program, lm, reporter, None, None, on_progress, (compile_seconds, compile_calls))
    if getattr(lm.engine, "lora", None) is not None:  # trained by finetune, or given as lm.lora
        prepared.spec.lm.lora, prepared.spec.lm.lora_sha256 = str(lm.engine.lora), lm.engine.lora_sha256
        log_lora(tracked, prepared.spec, prepared.finetune_report, lm.model)
    objects = RunObjects(prepared.spec, tracked, prepared, reporter).start(program, eval_fingerprint(prepared.evalset),
                                                                           lm=lm)
    failed = True
    try:
        outcome = _evaluate(prepared, program, lm, reporter, tracked, objects, on_progress,
                            (compile_seconds, compile_calls))
        failed = False
        return outcome
    finally:
        objects.finish(program, failed=failed)


def _evaluate(prepared: Prepared, program, lm, reporter: Reporter, tracked, objects: RunObjects | None,
              on_progress, compiled: tuple[float, int]) -> RunOutcome:
    spec = prepared.spec
    compile_seconds, compile_calls = compiled
    _, scored, _ = metric_fns(spec)
    subset = prepared.subset
    evalset = [e for e in prepared.evalset if str(e.get("id", "")) in subset.ids] if subset else prepared.evalset
    baselines = [] if subset else _baselines(prepared, reporter)
    compile_stop = prepared.budget.meter.reason if prepared.budget else ""
    if prepared.budget is not None:
        prepared.budget.evaluation_cap()
    if contract.warms_up(program):
        with reporter.phase("preparing retrieval (indexes, reranker)", None):
            program.warm_up()
    with reporter.progress(f"evaluating on {spec.eval.split}", len(evalset)) as show:
        def update(done: int, score: float, calls: int) -> None:
            show(done, score, calls)
            if on_progress:
                on_progress(done, len(evalset), score, calls)

        data = prepared.data
        eval_stop = ""
        try:
            result = evaluate(program, evalset, scored, output_field=data.output_field or data.label_field,
                              gold_field=data.label_field, example_fields=data.table_fields,
                              usage=lm.engine.usage, threads=spec.eval.threads, max_failures=spec.eval.max_failures,
                              on_progress=update, lm=lm, stop_when=lambda: lm.engine.breaker.reason or (
                                  prepared.budget.meter.reason if prepared.budget else ""),
                              tracer=objects.tracer if objects is not None else None)
        except EvaluationStopped as stopped:
            if not _stopped_by_budget(stopped, prepared, lm):
                if tracked is not None and stopped.partial is not None:
                    log_partial(tracked, stopped.partial, str(stopped), spec, program)
                raise
            # A budget is a limit the user set, not a failure: the run keeps what it measured, with its n.
            result, eval_stop = stopped.partial, str(stopped)
            reporter.warn(f"{eval_stop}; the score is on those {result.n} items (tagged workbench.partial; "
                          "`workbench eval --retry-failed RUN --max-lm-calls N` finishes it)")
        finally:
            if objects is not None:
                objects.release_traces()  # written while the results below are logged; finish() waits
    if subset is not None:
        result = merge(result, subset.kept, subset.order)
    outcome = RunOutcome(None, result, baselines, compile_seconds, compile_calls, program=program,
                         dev_score=prepared.dev_score, stopped=eval_stop)
    outcome.summary_metrics = summaries(spec, prepared, result, tracked)
    if tracked is not None:
        log_results(tracked, prepared, outcome, program, lm)
        if prepared.dev_score is not None:  # the gap from dev to test: how much the choice overfit dev
            tracked.log_metrics({"dev_score": prepared.dev_score, "dev_test_gap": prepared.dev_score - result.score})
        if prepared.planned_lm_calls is not None:
            tracked.log_metrics({"planned_lm_calls": prepared.planned_lm_calls})
        if prepared.budget is not None:
            tracked.log_metrics(prepared.budget.meter.spent.as_metrics())
            stops = [f"compile: {compile_stop}"] if compile_stop else []
            if eval_stop:
                stops.append(f"evaluation: {eval_stop}")
                tracked.set_tags({"workbench.partial": "true"})
                tracked.log_metrics({"planned_n_examples": len(evalset)})
            if stops:
                tracked.set_tags({"workbench.budget_exhausted": "; ".join(stops)[:5000]})
    rate = result.lm_failures / max(result.n, 1)
    if result.lm_failures and rate > spec.eval.max_lm_error_rate:
        reason = (f"{result.lm_failures} of {result.n} examples ({rate:.1%}) were lost to LM call failures after "
                  f"retries (eval.max_lm_error_rate {spec.eval.max_lm_error_rate:.0%}); the score "
                  f"{result.score:.3f} is the endpoint's, not the model's. Most common: {result.most_common_error()}")
        if tracked is not None:
            tracked.set_tags({"workbench.failure_reason": reason[:5000]})
        raise EndpointFailed(reason)
    if result.n and (result.table.error_type == "lm_refused").all():  # e.g. an unsupported lm.response_format
        reason = (f"the LM refused every one of the {result.n} examples ({result.most_common_error()}); check "
                  "lm.response_format, lm.max_tokens and the context window: no score was measured")
        if tracked is not None:
            tracked.set_tags({"workbench.failure_reason": reason[:5000]})
        raise EndpointFailed(reason)
    return outcome
