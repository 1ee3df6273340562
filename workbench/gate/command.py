"""`workbench gate SPEC_OR_RUN --against champion|RUN|EXPERIMENT`: may this change land?

The baseline is the registry's champion (`models:/NAME@champion`, NAME = the spec's name
or `--model`), another alias or version (`models:/NAME@ALIAS`, `models:/NAME/3`), a run, or
an experiment (its best-scoring evaluation run, not a `--folds` cross-fit). A spec is run first, on exactly the
baseline's evaluation examples in the same order, so the pair is valid; a run is used as it
is. Exit 0: not worse; 1: significantly worse, beyond `--max-drop`, or a failure-rate /
cost / latency check failed (or the candidate run itself failed); 2: bad input.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from workbench.console import Reporter
from workbench.errors import RunFailed, UserError

GATE_TAG = "workbench.gate"
AGAINST_TAG = "workbench.gate_against"


def add_parser(sub, tracking_default: str) -> None:
    g = sub.add_parser("gate", help="is a spec or run significantly worse than the champion (or a run)? "
                                    "exit 0 / 1; JUnit XML and a Markdown summary for CI")
    g.add_argument("candidate", metavar="SPEC_OR_RUN", help="a spec (YAML: run first, on the baseline's examples) "
                                                            "or a finished run id")
    g.add_argument("--against", required=True, metavar="champion|RUN|EXPERIMENT",
                   help="the registry's champion, models:/NAME@ALIAS or models:/NAME/VERSION, a run id, "
                        "or an experiment (its best-scoring run, not a --folds cross-fit)")
    g.add_argument("--model", help="registered model name for `champion` (default: the spec's name)")
    g.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired test (default 0.05)")
    g.add_argument("--max-drop", type=float, default=None,
                   help="fail when the mean score drops by more than this, significant or not (0-1; default: off)")
    g.add_argument("--max-failure-rate", type=float, default=0.02,
                   help="share of examples allowed to fail, or the baseline's share if higher (default 0.02)")
    g.add_argument("--max-cost-increase", type=float, default=0.25,
                   help="allowed growth of tokens per example (default 0.25 = +25%%)")
    g.add_argument("--max-latency-increase", type=float, default=0.5,
                   help="allowed growth of the median seconds per example (default 0.5 = +50%%)")
    g.add_argument("--junit", metavar="FILE", help="write a JUnit XML report (one test case per check)")
    g.add_argument("--markdown", metavar="FILE", help="write a Markdown summary for a pull-request comment")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a value of the candidate spec (repeatable)")
    g.add_argument("--tracking-uri", default=None,
                   help=f"the store with the baseline (default: the spec's tracking.uri, else {tracking_default})")
    g.add_argument("--quiet", action="store_true", help="no progress output; print one result line")
    g.set_defaults(tracking_default=tracking_default)


def _thresholds(args: argparse.Namespace):
    from workbench.gate.checks import Thresholds

    if args.max_drop is not None and not 0 <= args.max_drop <= 1:
        raise UserError(f"must be within [0, 1], got {args.max_drop:g}", field="--max-drop")
    if not 0 < args.alpha < 1:
        raise UserError(f"must be within (0, 1), got {args.alpha:g}", field="--alpha")
    if not 0 <= args.max_failure_rate <= 1:
        raise UserError(f"must be within [0, 1], got {args.max_failure_rate:g}", field="--max-failure-rate")
    for flag in ("max_cost_increase", "max_latency_increase"):
        if getattr(args, flag) < 0:
            raise UserError(f"must be 0 or more, got {getattr(args, flag):g}", field=f"--{flag.replace('_', '-')}")
    return Thresholds(alpha=args.alpha, max_drop=args.max_drop, max_failure_rate=args.max_failure_rate,
                      max_cost_increase=args.max_cost_increase, max_latency_increase=args.max_latency_increase)


def _is_spec(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or Path(ref).is_file()


def _registry_run_id(client, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    from workbench.export.promote import RUN_TAG

    body = uri.removeprefix("models:/")
    name, sep, alias = body.partition("@")
    try:
        if sep:
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = body.rpartition("/")
            version = client.get_model_version(name, number)
    except MlflowException:
        hint = "promote a run first: workbench promote RUN --name " + name if alias == "champion" else "check the name"
        raise UserError(f"the registry has no {uri} ({hint})", field="--against") from None
    run_id = version.tags.get(RUN_TAG) or version.run_id
    if not run_id:
        raise UserError(f"{uri} is not linked to an evaluation run", field="--against")
    return run_id


def resolve_baseline(client, against: str, model: str | None, exclude: str | None = None):
    """(the baseline as RunData, how to name it)."""
    from workbench.comparison.runs import load_run, resolve
    from workbench.tracking import RUN_KIND_TAG

    if against == "champion" or against.startswith("models:/"):
        if against == "champion":
            if not model:
                raise UserError("name the registered model with --model (a run has no spec name to default to)",
                                field="--model")
            against = f"models:/{model}@champion"
        run = client.get_run(_registry_run_id(client, against))
        return load_run(client, run), against
    runs = [r for r in resolve(client, [against]) if r.info.run_id != exclude]
    if client.get_experiment_by_name(against) is not None:  # an experiment: its best-scoring evaluation run
        # not a `--folds` cross-fit: its pooled score is k programs', none of them one that could land
        programs = [r for r in runs if r.data.tags.get(RUN_KIND_TAG) != "cross_fitted"]
        if runs and not programs:
            raise UserError(f"experiment {against!r} holds only cross-fitted runs (--folds), which no one program "
                            "scored; name one by its run id to gate against its pooled score", field="--against")
        runs = sorted((r for r in programs if "score" in r.data.metrics), key=lambda r: -r.data.metrics["score"])
    if not runs:
        raise UserError(f"{against!r} has no finished evaluation run to gate against", field="--against")
    return load_run(client, runs[0]), against


def _candidate_from_outcome(spec, outcome, run_name: str):
    from workbench.comparison.runs import RunData

    result = outcome.result
    metrics = {**result.metrics(), "compile_seconds": outcome.compile_seconds}
    return RunData(run_id=outcome.run_id or "(not tracked)", name=run_name, experiment=spec.tracking.experiment or spec.name,
                   status="FINISHED", metrics=metrics, tags={"workbench.task": spec.task}, params={},
                   table=result.table, state=outcome.program.dump_state() if outcome.program is not None else {})


def _run_spec(args, reporter: Reporter):
    """Run the candidate spec on the baseline's examples; returns (baseline, its name, candidate)."""
    from workbench.lm.preflight import preflight
    from workbench.spec import load_spec

    overrides = list(args.overrides) + ([f"tracking.uri={args.tracking_uri}"] if args.tracking_uri else [])
    spec = load_spec(args.candidate, overrides)
    for line in preflight(spec):
        reporter.info(f"endpoint ok: {line}")
    from workbench.comparison.runs import client_for

    client = client_for(spec.tracking.uri)
    baseline, label = resolve_baseline(client, args.against, args.model or spec.name)
    if baseline.task and baseline.task != spec.task:
        raise UserError(f"the baseline is a {baseline.task!r} run and the spec a {spec.task!r} one: nothing to pair",
                        field="--against")
    split = baseline.tags.get("workbench.eval_split") or spec.eval.split
    if split != spec.eval.split:
        reporter.info(f"evaluating on {split} like the baseline (the spec says {spec.eval.split})")
    # the whole split, so every one of the baseline's examples is there whatever size or seed the spec asks for
    whole = "dataset.test=null" if split == "test" else "dataset.dev=null"
    spec = load_spec(args.candidate, [*overrides, f"eval.split={split}", whole])
    from workbench.data.loading import load_data

    loaded = load_data(spec)
    dataset = baseline.tags.get("workbench.dataset")
    if dataset and dataset != loaded.data.name:
        raise UserError(f"the baseline was evaluated on dataset {dataset!r}, the spec loads {loaded.data.name!r}",
                        file=spec.source, field="dataset.name")
    ids = [str(i) for i in baseline.table["id"]]
    reporter.info(f"gating {spec.name} against {label} (run {baseline.run_id[:12]}): its {len(ids)} {split} "
                  "examples, paired")
    from workbench.runner import RunHooks, run

    run_name = f"{spec.name}-gate-{time.strftime('%Y%m%d-%H%M%S')}"
    if spec.tracking.enabled and not spec.tracking.run_name:
        spec = spec.model_copy(update={"tracking": spec.tracking.model_copy(update={"run_name": run_name})})
    outcome = run(spec, reporter=reporter, loaded=loaded, eval_ids=ids,
                  hooks=RunHooks(tags={AGAINST_TAG: baseline.run_id}))
    if outcome.stopped:  # a budget cut the evaluation short: too little evidence to pass a gate
        raise RunFailed(f"its evaluation stopped early ({outcome.stopped}); a gate needs all {len(ids)} examples")
    return baseline, label, _candidate_from_outcome(spec, outcome, run_name), client


def gate_command(args: argparse.Namespace) -> int:
    from workbench.gate.report import check_writable, junit_xml, markdown, write_atomic

    thresholds = _thresholds(args)
    check_writable(args.junit, "--junit")
    check_writable(args.markdown, "--markdown")
    reporter = Reporter(quiet=args.quiet)
    start = time.perf_counter()
    suite = Path(args.candidate).stem if _is_spec(args.candidate) else args.candidate[:12]

    from workbench.comparison.runs import client_for, load_run, resolve

    try:
        if _is_spec(args.candidate):
            baseline, label, candidate, client = _run_spec(args, reporter)
        else:
            if args.overrides:
                raise UserError("--set applies to a spec; a finished run is gated as it is", field="--set")
            client = client_for(args.tracking_uri or args.tracking_default)
            found = resolve(client, [args.candidate])
            if len(found) != 1:
                raise UserError(f"{args.candidate!r} names {len(found)} runs; give one run id", field="SPEC_OR_RUN")
            candidate = load_run(client, found[0])
            if candidate.tags.get("workbench.partial") == "true":
                raise RunFailed(f"run {candidate.run_id[:12]} was evaluated on part of its items only "
                                f"({candidate.tags.get('workbench.budget_exhausted') or candidate.tags.get('workbench.failure_reason', '')}"
                                "); finish it with `workbench eval --retry-failed RUN` first")
            baseline, label = resolve_baseline(client, args.against, args.model or candidate.tags.get("workbench.spec"),
                                               exclude=candidate.run_id)
            if baseline.task and candidate.task and baseline.task != candidate.task:
                raise UserError(f"the baseline is a {baseline.task!r} run and the candidate a {candidate.task!r} one: "
                                "nothing to pair", field="--against")
    except RunFailed as exc:
        if args.junit:
            write_atomic(args.junit, junit_xml(None, suite=suite, seconds=time.perf_counter() - start,
                                               error=f"the candidate run failed: {exc}"))
        if args.markdown:
            write_atomic(args.markdown, f"## workbench gate: ❌ the candidate run failed\n\n{exc}\n")
        raise
    from workbench.gate.checks import gate

    result = gate(baseline, candidate, thresholds)
    seconds = time.perf_counter() - start
    if args.junit:
        write_atomic(args.junit, junit_xml(result, suite=suite, seconds=seconds))
    if args.markdown:
        write_atomic(args.markdown, markdown(result, baseline_ref=label))
    if candidate.run_id != "(not tracked)":
        _tag(client, candidate.run_id, result, baseline.run_id)
    _print(reporter, result, label, args)
    return 0 if result.passed else 1


def _tag(client, run_id: str, result, baseline_id: str) -> None:
    client.set_tag(run_id, GATE_TAG, "passed" if result.passed else "failed")
    client.set_tag(run_id, AGAINST_TAG, baseline_id)


def _print(reporter: Reporter, result, label: str, args) -> None:
    p = result.paired
    failed = [c.name for c in result.checks if c.failed]
    if args.quiet:
        reporter.line(f"gate={'passed' if result.passed else 'failed'} candidate={result.candidate.run_id} "
                      f"baseline={result.baseline.run_id} difference={p.difference:+.4f} p={p.p_value:.4g} n={p.n}"
                      + (f" failed={','.join(failed)}" if failed else ""))
        return
    reporter.table(f"gate: {result.candidate.label} vs {label}", ["check", "result", "detail"],
                   [[c.name, c.status, c.message] for c in result.checks])
    reporter.line("gate passed: not worse than the baseline" if result.passed
                  else f"gate FAILED: {', '.join(failed)}")
    for flag, path in (("JUnit", args.junit), ("Markdown", args.markdown)):
        if path:
            reporter.line(f"{flag}: {path}")
