"""The `workbench` command: thin argument parsing over the Python API.

User errors print one line and exit 2; Ctrl-C exits 130 (the run is marked KILLED).
"""

from __future__ import annotations

import argparse
import sys

from workbench.errors import RunFailed, UserError
from workbench.tracking import default_uri


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _add_spec_args(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    parser.add_argument("spec", nargs="?" if optional else None,
                        help="experiment spec (YAML), e.g. experiments/routing_clinc150.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a spec value, e.g. --set dataset.test=50 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress output; print one result line")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
        return value

    return parse


BUDGET_FLAGS = {"max_lm_calls": int, "max_tokens": int, "max_cost_usd": float, "timeout": float}


def _add_budget_args(parser: argparse.ArgumentParser) -> None:
    """Budgets for one run, compile and evaluation together (the spec's `budget:` keys)."""
    group = parser.add_argument_group("budget (compile + evaluation, every LM of the run)")
    group.add_argument("--max-lm-calls", type=_positive(int), metavar="N", help="stop after N LM calls")
    group.add_argument("--max-tokens", type=_positive(int), metavar="N", help="stop after N prompt + completion tokens")
    group.add_argument("--max-cost-usd", type=_positive(float), metavar="X",
                       help="stop at X dollars (needs lm.price_input_per_mtok / price_output_per_mtok)")
    group.add_argument("--timeout", type=_positive(float), metavar="S", help="stop after S seconds")
    group.add_argument("--allow-over-estimate", action="store_true",
                       help="run even when the planned calls exceed --max-lm-calls (the budget still stops it)")


def _run_id(value: str) -> str:
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(f"not an MLflow run id (32 hex digits): {value!r}")
    return value


def budget_overrides(args: argparse.Namespace) -> list[str]:
    """The budget flags as spec overrides (`budget.<key>=<value>`)."""
    out = []
    for flag in BUDGET_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            out.append(f"budget.{'timeout_s' if flag == 'timeout' else flag}={value}")
    if getattr(args, "allow_over_estimate", False):
        out.append("budget.allow_over_estimate=true")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description="Compile, evaluate, track and compare DSPy programs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="compile and evaluate a spec, tracked in MLflow")
    _add_spec_args(run)
    _add_budget_args(run)
    run.add_argument("--resume", metavar="RUN_ID", type=_run_id,
                     help="continue this killed or failed run of the same spec, in the same MLflow run (completed "
                          "LM calls come from the cache, GEPA from its checkpoint)")
    run.add_argument("--tracking-uri", metavar="URI", help="the MLflow store to log to (beats the spec's tracking.uri, "
                     "which beats $WORKBENCH_TRACKING_URI / $MLFLOW_TRACKING_URI, then the project's mlruns/ store)")
    run.add_argument("--seeds", type=int, default=1, metavar="N",
                     help="compile with N optimizer seeds (child runs; the parent logs mean and 95%% CI)")
    run.add_argument("--folds", type=_positive(int), metavar="K",
                     help="cross-fit: K child runs, each testing on one of K parts of the test split and training "
                          "on the rest too; the parent scores every test item once (dataset.fold)")
    ev = sub.add_parser("eval", help="evaluate a saved program (DSPy JSON state) with a spec")
    _add_spec_args(ev, optional=True)
    _add_budget_args(ev)
    ev.add_argument("--program", help="program.json saved by a run (with SPEC)")
    ev.add_argument("--retry-failed", metavar="RUN", help="re-run only the examples RUN lost to LM call failures "
                    "(not wrong or unparsed answers) with RUN's program; a new run merges them with RUN's successes")
    ev.add_argument("--tracking-uri", metavar="URI",
                    help="the store to log to, and holding RUN with --retry-failed (flag > spec > environment > default)")
    runs = sub.add_parser("runs", help="list recent runs with their scores")
    runs.add_argument("--experiment", help="only this experiment")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--tracking-uri", default=default_uri())
    cmp = sub.add_parser("compare", help="compare finished runs: leaderboard, paired tests, changed examples, "
                                         "prompt diff, plots")
    cmp.add_argument("runs", nargs="+", help="run ids (or unique 8+ character prefixes) or experiment names; "
                                             "the first run is the baseline of each pair")
    cmp.add_argument("--all-pairs", action="store_true", help="test every pair, not each run against the first")
    cmp.add_argument("--out", help="folder for report.md, CSVs and PNGs (default mlruns/comparisons/<time>)")
    cmp.add_argument("--no-log", action="store_true", help="do not log the comparison as an MLflow run")
    cmp.add_argument("--tracking-uri", default=default_uri())
    ui = sub.add_parser("ui", help="the MLflow UI over the project's store, on 127.0.0.1")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--tracking-uri", default=default_uri())
    from workbench.cache import add_parser as add_cache_parser
    from workbench.gate.command import add_parser as add_gate_parser

    add_cache_parser(sub, default_uri())

    add_gate_parser(sub, default_uri())
    from workbench.export.command import add_parsers

    add_parsers(sub)
    from workbench.sweep.command import add_parsers as add_sweep_parsers

    add_sweep_parsers(sub)
    init = sub.add_parser("init", help="write a runnable spec for your own data file (CSV, JSON(L), Parquet, ...)")
    init.add_argument("data_file", metavar="DATA_FILE", help="the data: a file, or a save_to_disk folder")
    init.add_argument("--task", required=True, choices=["routing", "rag", "tools"])
    init.add_argument("--name", help="spec and experiment name (default: the file's name)")
    init.add_argument("--out", help="where to write the spec (default experiments/NAME.yaml; never overwritten)")
    init.add_argument("--input", help="the input column (default: proposed from the data)")
    init.add_argument("--label", help="the label / answers / expected-calls column (default: proposed)")
    init.add_argument("--corpus", help="rag: the passages (a folder of .txt/.md, or a JSONL of {id, title, text})")
    init.add_argument("--tools", help="tools: registered tool names offered with every example, comma-separated")
    init.add_argument("--imports", action="append", metavar="MODULE_OR_FILE",
                      help="your module(s) to import first (dotted name or .py path; repeatable)")
    ls = sub.add_parser("list", help="registered programs, metrics, summaries, datasets, optimizers, retrievers, tools")
    ls.add_argument("kind", nargs="?", choices=["programs", "metrics", "summaries", "datasets", "optimizers", "retrievers",
                                             "tools", "lm_backends"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("run", "eval"):
            from workbench.commands import run_command

            return run_command(args)
        if args.command == "compare":
            from workbench.commands import _quiet_libraries
            from workbench.comparison.command import compare_command

            _quiet_libraries()
            return compare_command(args)
        if args.command == "gate":
            from workbench.commands import _quiet_libraries
            from workbench.gate.command import gate_command

            _quiet_libraries()
            return gate_command(args)
        if args.command == "cache":
            from workbench.cache import cache_command

            return cache_command(args)
        if args.command == "ui":
            from workbench.commands import ui_command

            return ui_command(args)
        if args.command in ("export", "promote", "serve"):
            from workbench.commands import _quiet_libraries
            from workbench.export import command

            _quiet_libraries()
            return getattr(command, f"{args.command}_command")(args)
        if args.command in ("sweep", "sweep-worker"):
            from workbench.sweep.storage_url import check_storage_url

            check_storage_url(args.storage)  # before the heavy imports: a bad URL is told in well under a second
            from workbench.commands import _quiet_libraries
            from workbench.sweep import command

            _quiet_libraries()
            return command.sweep_command(args) if args.command == "sweep" else command.worker_command(args)
        if args.command == "init":
            from workbench.commands import _quiet_libraries
            from workbench.init import init_command

            _quiet_libraries()
            return init_command(args)
        if args.command == "runs":
            from workbench.commands import runs_command

            return runs_command(args)
        from workbench.commands import list_command

        return list_command(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"error: run failed: {exc} (the MLflow run is marked FAILED)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the run was marked KILLED", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
