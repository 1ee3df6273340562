"""What each CLI subcommand does, on top of the Python API (runner, tracking, registry)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from workbench.console import Reporter


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("dspy", "mlflow", "LiteLLM", "httpx", "datasets", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _ci(low: float, high: float) -> str:
    return f"[{low:.3f}, {high:.3f}]"


def print_outcome(reporter: Reporter, spec, outcome) -> None:
    result = outcome.result
    n = result.n
    from workbench.optimize.sequence import label as optimizer_label

    name = optimizer_label(spec.optimizer.name, spec.optimizer.params)
    label = f"{spec.program.name} + {name if outcome.compile_seconds or spec.optimizer.name == 'none' else 'loaded'} (LM)"
    rows = [[label, f"{result.score:.3f}", _ci(*result.ci), str(n), f"{result.failures} ({result.parse_failures} parse)",
             f"{result.seconds / max(n, 1):.3f}", str(result.usage.calls)]]
    for baseline in outcome.baselines:
        rows.append([f"{baseline.name} (classical baseline)", f"{baseline.score:.3f}", _ci(*baseline.ci), str(n), "0",
                     f"{baseline.seconds / max(n, 1):.4f}", "0"])
    caption = (f"compile: {outcome.compile_seconds:.1f} s, {outcome.compile_lm_calls} LM calls · "
               f"eval tokens: {result.usage.input_tokens} prompt / {result.usage.output_tokens} completion")
    extra = ", ".join(f"{k} {v:.3f}" for k, v in outcome.summary_metrics.items())
    if extra:
        caption += f" · {extra}"
    reporter.table(f"{spec.name}: {spec.metric.name} on {spec.eval.split}",
                   ["system", spec.metric.name, "95% CI", "n", "failures", "s/example", "LM calls"], rows, caption)
    if result.usage.retries or result.usage.wait_seconds >= 1:
        reporter.info(f"endpoint: {result.usage.retries} retried LM calls, {result.usage.wait_seconds:.1f} s waiting "
                      "(backoff and the client-side rate limit)")
    if result.failures:
        reporter.warn(f"{result.failures} of {n} predictions failed and scored 0 "
                      f"({result.error_counts}); most common: {result.most_common_error()}")
    best = max(outcome.baselines, key=lambda b: b.score, default=None)
    if best is not None and best.score > result.score and not reporter.quiet:
        reporter.line(f"note: the classical baseline {best.name} beats the LM program here "
                      f"({best.score:.3f} vs {result.score:.3f}).")


def tracking_override(args: argparse.Namespace) -> list[str]:
    """--tracking-uri as the last spec override: flag > spec > environment > default."""
    return [f"tracking.uri={args.tracking_uri}"] if getattr(args, "tracking_uri", None) else []


def run_command(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from workbench.data.loading import load_data
    from workbench.lm.preflight import preflight
    from workbench.spec import load_spec

    # Everything a user can get wrong is checked before DSPy, MLflow or llama.cpp is imported:
    # the spec (names from the registries' index), the endpoint, then the data.
    reporter = Reporter(quiet=args.quiet)
    if args.command == "eval":
        from workbench.errors import UserError

        if getattr(args, "retry_failed", None):
            if args.spec or args.program:
                raise UserError("--retry-failed takes the run's own spec and program; give no SPEC or --program",
                                field="--retry-failed")
            from workbench.retry_failed import retry_failed

            from workbench.cli import budget_overrides

            from workbench.tracking import default_uri

            outcome, spec = retry_failed(args.retry_failed, tracking_uri=args.tracking_uri or default_uri(),
                                         overrides=[*args.overrides, *budget_overrides(args)], reporter=reporter)
            return _report_outcome(reporter, spec, outcome, args)
        if not args.spec or not args.program:
            raise UserError("give SPEC and --program PATH, or --retry-failed RUN", field="eval")
    from workbench.cli import budget_overrides

    spec = load_spec(args.spec, [*args.overrides, *budget_overrides(args), *tracking_override(args)])
    if getattr(args, "program", None) is not None and not str(args.program).endswith(".json"):
        from workbench.errors import UserError

        raise UserError("a saved program must be DSPy JSON state (.json); pickles are never loaded", file=args.program)
    folds = getattr(args, "folds", None)
    for flag, given in (("--seeds", getattr(args, "seeds", 1) != 1), ("--resume", getattr(args, "resume", None))):
        if folds is not None and given:  # before the endpoint is called: a flag error costs no request
            from workbench.errors import UserError

            raise UserError(f"--folds runs one child per fold; it does not combine with {flag}", field=flag)
    for line in preflight(spec):
        reporter.info(f"endpoint ok: {line}")
    if folds is not None:
        return _folds_command(reporter, spec, args)
    if getattr(args, "seeds", 1) != 1:
        if getattr(args, "resume", None):
            from workbench.errors import UserError

            raise UserError("--resume continues one run; it does not combine with --seeds", field="--resume")
        return _seeds_command(reporter, spec, args)
    loaded = load_data(spec)
    from workbench.lm.window import check_demos_fit

    check_demos_fit(spec, loaded.data)
    from workbench.runner import run

    outcome = run(spec, reporter=reporter, program_path=getattr(args, "program", None), loaded=loaded,
                  resume_run_id=getattr(args, "resume", None))
    return _report_outcome(reporter, spec, outcome, args)


def _report_outcome(reporter: Reporter, spec, outcome, args: argparse.Namespace) -> int:
    print_outcome(reporter, spec, outcome)
    result = outcome.result
    if args.quiet:
        reporter.line(f"run_id={outcome.run_id} score={result.score:.4f} ci_low={result.ci[0]:.4f} "
                      f"ci_high={result.ci[1]:.4f} n={result.n} failures={result.failures}")
    elif outcome.run_id:
        reporter.line(f"MLflow run {outcome.run_id} (experiment {spec.tracking.experiment or spec.name}); "
                      f"browse: mlflow ui --backend-store-uri {spec.tracking.uri}")
        if outcome.program_path:
            reporter.line(f"compiled program: {outcome.program_path}")
    return 0


def _folds_command(reporter: Reporter, spec, args: argparse.Namespace) -> int:
    from workbench.crossfit import run_folds

    outcome = run_folds(spec, args.folds, reporter=reporter)
    rows = [[f"{i}/{outcome.k}", f"{o.result.score:.3f}", _ci(*o.result.ci), str(o.result.n), str(o.result.failures),
             o.run_id or "-"] for i, o in enumerate(outcome.outcomes, 1)]
    reporter.table(f"{spec.name}: {spec.optimizer.name}, cross-fitted over {outcome.k} folds",
                   ["fold", spec.metric.name, "95% CI", "n", "failures", "run"], rows)
    low, high = outcome.ci
    reporter.line(f"cross-fitted {spec.metric.name} {outcome.score:.4f}, 95% CI [{low:.4f}, {high:.4f}], "
                  f"n={len(outcome.table)} (each item scored by the fold that did not train on it)"
                  + (f"; parent run {outcome.run_id}" if outcome.run_id else ""))
    if outcome.baselines:
        reporter.line("classical baselines cross-fitted on the same items: " + ", ".join(
            f"{name} {score:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]" for name, (score, ci) in outcome.baselines.items()))
    return 0


def _seeds_command(reporter: Reporter, spec, args: argparse.Namespace) -> int:
    from workbench.seeds import run_seeds

    outcome = run_seeds(spec, args.seeds, reporter=reporter)
    rows = [[str(seed), f"{o.result.score:.3f}", _ci(*o.result.ci), str(o.result.n), str(o.result.failures),
             o.run_id or "-"] for seed, o in zip(outcome.seeds, outcome.outcomes)]
    reporter.table(f"{spec.name}: {spec.optimizer.name} over {len(rows)} seeds",
                   ["seed", spec.metric.name, "95% CI", "n", "failures", "run"], rows)
    low, high = outcome.ci
    reporter.line(f"mean {outcome.mean:.4f}, 95% CI over seeds [{low:.4f}, {high:.4f}]"
                  + (f"; parent run {outcome.run_id}" if outcome.run_id else ""))
    return 0


def runs_command(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from workbench.errors import UserError
    from workbench.tracking import RUN_KIND_TAG

    uri = args.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        print(f"no runs yet: {uri} does not exist (start one with `workbench run SPEC`)")
        return 0
    if args.limit < 1:
        raise UserError("must be at least 1", field="--limit")
    from workbench.tracking import client as mlflow_client

    client = mlflow_client(uri)
    experiments = client.search_experiments()
    if args.experiment:
        experiments = [e for e in experiments if e.name == args.experiment]
        if not experiments:
            raise UserError(f"no experiment named {args.experiment!r}", field="--experiment")
    names = {e.experiment_id: e.name for e in experiments}
    runs = client.search_runs(list(names), order_by=["attributes.start_time DESC"], max_results=args.limit) if names else []
    reporter = Reporter()
    rows = []
    for r in runs:
        m, t = r.data.metrics, r.data.tags
        score = f"{m['score']:.3f}" if "score" in m else "-"
        ci = _ci(m["score_ci_low"], m["score_ci_high"]) if "score_ci_low" in m else ""
        started = __import__("datetime").datetime.fromtimestamp(r.info.start_time / 1000).strftime("%Y-%m-%d %H:%M")
        rows.append([r.info.run_id[:12], started, names[r.info.experiment_id], r.info.run_name or "", r.info.status,
                     t.get(RUN_KIND_TAG, ""), t.get("workbench.optimizer", ""), score, ci,
                     str(int(m["n_examples"])) if "n_examples" in m else ""])
    if not rows:
        print("no runs yet")
        return 0
    reporter.table("recent runs", ["run", "started", "experiment", "name", "status", "kind", "optimizer", "score",
                                   "95% CI", "n"], rows)
    return 0


def list_command(args: argparse.Namespace) -> int:
    from workbench import registry

    kinds = [args.kind] if args.kind else ["programs", "metrics", "summaries", "datasets", "optimizers", "retrievers", "tools",
                                           "lm_backends"]
    for kind in kinds:
        reg = getattr(registry, kind)
        print(f"{kind}:")
        for name in reg.names():
            entry = reg.get(name)
            doc = (getattr(entry, "fn", entry).__doc__ or "").strip().splitlines()  # a tool documents its function
            rows = f"{_row_counts(entry):22s} " if kind == "datasets" else ""
            print(f"  {name:34s} {rows}{doc[0] if doc else ''}")
    if not args.kind:
        registry.write_index()  # every registry is loaded now: later spec checks need not import them
    return 0


def _row_counts(loader) -> str:
    """`train/dev/test` rows of a dataset that loads without params; '(needs params)' otherwise."""
    import inspect

    from workbench.errors import UserError

    if getattr(loader, "needs_params", False) or any(
            p.default is p.empty and p.kind is not p.VAR_KEYWORD for p in inspect.signature(loader).parameters.values()):
        return "(needs dataset.params)"
    try:
        data = loader()
    except UserError as exc:
        return f"(error: {exc.message[:40]})"
    return "/".join(f"{len(data.splits[s]):,}" for s in ("train", "validation", "test"))


def ui_command(args: argparse.Namespace) -> int:
    """Replace this process with `mlflow ui` on the project's store (Ctrl-C stops it)."""
    import sys

    from workbench.errors import UserError

    uri = args.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise UserError(f"no MLflow store at {uri} yet (start a run with `workbench run SPEC`)", field="--tracking-uri")
    if not 0 < args.port < 65536:
        raise UserError(f"port must be 1-65535, got {args.port}", field="--port")
    print(f"MLflow UI: http://{args.host}:{args.port}  (store {uri}; Ctrl-C stops it)", flush=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port), "--workers", "1"]
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no background job workers
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: do not fetch price tables
    os.execv(sys.executable, command)
    return 0  # not reached
