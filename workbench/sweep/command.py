"""`workbench sweep` and `workbench sweep-worker`: arguments and printing."""

from __future__ import annotations

import argparse

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"


def add_parsers(sub) -> None:
    sw = sub.add_parser("sweep", help="an Optuna search over the spec's `search:` space, one MLflow child run "
                                      "per trial (resumable; workers on several machines with PostgreSQL)")
    sw.add_argument("spec", help="a spec with a `search:` section, e.g. experiments/sweep_routing_clinc150.yaml")
    sw.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override a spec value (repeatable)")
    sw.add_argument("--tracking-uri", metavar="URI", help="the MLflow store for the parent and trial runs "
                    "(flag > spec > $WORKBENCH_TRACKING_URI / $MLFLOW_TRACKING_URI > the project's mlruns/ store)")
    sw.add_argument("--trials", type=int, required=True, help="finished trials the study should have")
    sw.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1: in-process)")
    sw.add_argument("--storage", default=DEFAULT_STORAGE,
                    help=f"Optuna storage URL (default {DEFAULT_STORAGE}; postgresql://user@host:5432/db for several machines)")
    sw.add_argument("--study", help="study name (default: <spec name>-sweep)")
    sw.add_argument("--resume", action="store_true", help="continue a study whose search space differs from this spec")
    sw.add_argument("--max-lm-calls", type=int, help="stop when the study's trials have made this many LM calls")
    sw.add_argument("--max-tokens", type=int, help="stop at this many prompt + completion tokens")
    sw.add_argument("--max-cost-usd", type=float, help="stop at this cost (prices per model: search.prices)")
    sw.add_argument("--timeout", type=float, metavar="SECONDS", help="stop after this long (the running trial is pruned)")
    sw.add_argument("--quiet", action="store_true", help="no progress bars")
    wk = sub.add_parser("sweep-worker", help="join a running sweep's study (on this or another machine)")
    wk.add_argument("--study", required=True)
    wk.add_argument("--storage", required=True, help="the same storage URL the sweep uses")
    wk.add_argument("--worker-index", type=int, default=0, help="varies the sampler seed between workers")


def sweep_command(args: argparse.Namespace) -> int:
    from workbench.console import Reporter
    from workbench.lm.preflight import preflight
    from workbench.spec import load_spec

    from workbench.commands import tracking_override

    spec = load_spec(args.spec, [*args.overrides, *tracking_override(args)])
    preflight(spec)  # a dead endpoint is exit 2 before the study or its parent run exists
    if spec.search is not None:
        from workbench.data.loading import load_data
        from workbench.lm.window import check_space_fits

        check_space_fits(spec, load_data(spec).data)  # a demo count beyond the window: refused before trial 0
    from workbench.sweep.budget import Budget
    from workbench.sweep.driver import sweep

    budget = Budget(max_lm_calls=args.max_lm_calls, max_tokens=args.max_tokens, max_cost_usd=args.max_cost_usd)
    result = sweep(spec, trials=args.trials, workers=args.workers, storage_url=args.storage, study_name=args.study,
                   budget=budget, timeout_s=args.timeout, resume=args.resume, reporter=Reporter(quiet=True))
    print(f"stopped: {result.stop_reason}")
    if result.verdict:
        print(result.verdict)
    if not result.best:
        print(f"no trial finished; parent run {result.parent_run_id}")
        return 1
    names = [o.metric for o in spec.search.objectives]
    for t in result.best:
        values = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, t.values, strict=True))
        params = ", ".join(f"{k}={v}" for k, v in t.params.items())
        print(f"recommended trial {t.number}: {values} ({params}) run {t.user_attrs.get('mlflow_run_id', '')[:8]}")
    print(f"parent_run_id={result.parent_run_id} study={result.study.study_name}")
    return 0


def worker_command(args: argparse.Namespace) -> int:
    from workbench.console import Reporter
    from workbench.sweep.driver import worker

    reason = worker(args.study, args.storage, index=args.worker_index, reporter=Reporter(quiet=True))
    print(f"worker stopped: {reason}")
    return 0
