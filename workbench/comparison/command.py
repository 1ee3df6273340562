"""`workbench compare`: print the comparison, write it to a folder, log it to MLflow."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from workbench.comparison.plots import breakdown, cost_quality
from workbench.comparison.report import Comparison, compare
from workbench.console import Reporter

SHOWN_CHANGES = 10


def _fmt(value, digits: int = 3) -> str:
    try:
        return "-" if value != value else f"{value:.{digits}f}"  # NaN -> "-"
    except (TypeError, ValueError):
        return str(value)


def write_report(comparison: Comparison, out: Path) -> list[Path]:
    """report.md, CSVs and PNGs in `out` (created); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "leaderboard.csv", out / "pairs.csv"]
    comparison.leaderboard.to_csv(files[0], index=False)
    comparison.pairs.to_csv(files[1], index=False)
    lines = ["# Run comparison", "", "## Leaderboard", "", comparison.leaderboard.drop(columns=["run_id"])
             .to_markdown(index=False, floatfmt=".3f"), "", "## Pairs", "",
             comparison.pairs.to_markdown(index=False, floatfmt=".4f"), ""]
    if comparison.environment:
        lines += ["## Software", ""] + [f"- {comparison.run(a).label} → {comparison.run(b).label}: {line}"
                                        for (a, b), line in comparison.environment.items()] + [""]
    for (a, b), frame in comparison.changes.items():
        path = out / f"changes_{a[:8]}_{b[:8]}.csv"
        frame.to_csv(path)
        files.append(path)
        lines += [f"## Changed examples: {comparison.run(a).label} → {comparison.run(b).label}", "",
                  f"{(frame.change == 'better').sum()} better, {(frame.change == 'worse').sum()} worse "
                  f"(all in `{path.name}`)", "", "## Prompt diff", "", "```diff", comparison.prompt_diff[(a, b)],
                  "```", ""]
    files.append(cost_quality(comparison.leaderboard, out / "cost_quality.png"))
    chart = breakdown(comparison.runs, out / "breakdown.png")
    if chart:
        files.append(chart)
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return [report, *files]


def log_comparison(comparison: Comparison, files: list[Path], tracking_uri: str) -> str:
    """A `comparison` run in the first run's experiment, holding the report and plots."""
    from workbench.spec import TrackingSpec
    from workbench.tracking import tracked_run

    tags = {"workbench.compared_runs": ",".join(r.run_id for r in comparison.runs)[:5000],
            "workbench.task": comparison.runs[0].task}
    with tracked_run(TrackingSpec(uri=tracking_uri), kind="comparison", experiment=comparison.runs[0].experiment,
                     run_name=f"compare-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags) as run:
        for path in files:
            run.log_file(path)
    return run.run_id


def compare_command(args: argparse.Namespace) -> int:
    comparison = compare(args.runs, tracking_uri=args.tracking_uri, all_pairs=args.all_pairs)
    reporter = Reporter()
    board = comparison.leaderboard
    reporter.table("leaderboard", ["run", "optimizer", "score", "95% CI", "dev score", "n", "LM calls", "tokens",
                                   "s/example", "compile s"],
                   [[r.run, r.optimizer, _fmt(r.score), f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]", _fmt(r.dev_score), str(r.n),
                     _fmt(r.lm_calls, 0), _fmt(r.prompt_tokens + r.completion_tokens, 0),
                     _fmt(r.seconds_per_example), _fmt(r.compile_seconds, 1)] for r in board.itertuples()])
    reporter.table("paired comparisons (b − a)", ["a", "b", "difference", "95% CI", "test", "p", "better", "worse", "n"],
                   [[p.a, p.b, f"{p.difference:+.3f}", f"[{p.ci_low:+.3f}, {p.ci_high:+.3f}]", p.test,
                     f"{p.p_value:.4f}" + (" *" if p.significant else ""), str(p.better), str(p.worse), str(p.n)]
                    for p in comparison.pairs.itertuples()], "* p < 0.05")
    for (a, b), line in comparison.environment.items():
        reporter.warn(f"{comparison.run(a).label} → {comparison.run(b).label}: {line}")
    for (a, b), frame in comparison.changes.items():
        shown = frame.head(SHOWN_CHANGES)
        reporter.table(f"changed examples {comparison.run(a).label} → {comparison.run(b).label} "
                       f"(first {len(shown)} of {len(frame)})", ["id", "input", "gold", "a", "b", "change"],
                       [[str(i)[:12], str(r.input)[:50], str(r.gold)[:24], str(r.predicted_a)[:24],
                         str(r.predicted_b)[:24], r.change] for i, r in shown.iterrows()])
        reporter.line(f"prompt diff {comparison.run(a).label} → {comparison.run(b).label}:")
        reporter.line(comparison.prompt_diff[(a, b)])
    out = Path(args.out or Path("mlruns") / "comparisons" / time.strftime("%Y%m%d-%H%M%S"))
    files = write_report(comparison, out)
    reporter.line(f"report, CSVs and plots: {out}")
    if not args.no_log:
        run_id = log_comparison(comparison, files, args.tracking_uri)
        reporter.line(f"logged as MLflow run {run_id} (kind: comparison)")
    return 0
