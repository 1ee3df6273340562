"""Tracking benchmark: what per-example traces (with assessments) cost a run.

1. Overhead: `workbench run` on N routing items with the embedded LM, LM cache off, once
   with `tracking.traces: all` and once with `none`, alternating (none, all, all, none, ...)
   so drift on the machine hits both alike. The figure is the ratio of the mean run times
   (process wall time: the evaluation plus the wait for the trace writer). Goal: <= 5%.
2. Throughput: M items with the recorded LM backend (LM time ~0), traces on: how many
   traces per second the writer stores, and the wait after the evaluation.
3. Store size: the SQLite store after the traced run minus after the untraced one, per
   1,000 traces.

    python benchmarks/tracking.py                  # N = 300, 1 pass of each (~12 min), M = 4500
    python benchmarks/tracking.py --passes 2       # none, all, all, none
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results import table, write_sections  # noqa: E402

ROUTING = ROOT / "experiments" / "routing_clinc150.yaml"


def _run(folder: Path, *sets: str) -> tuple[float, dict[str, float]]:
    """Wall seconds of `workbench run` and the run's metrics."""
    args = [a for o in [*sets, f"tracking.uri=sqlite:///{folder}/mlflow.db",
                        f"tracking.artifact_root={folder}/artifacts"] for a in ("--set", o)]
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(ROUTING), "--quiet", *args], cwd=ROOT,
                            capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = result.stdout.split("run_id=")[1].split()[0]
    with sqlite3.connect(folder / "mlflow.db") as db:
        rows = db.execute("select key, value from latest_metrics where run_uuid = ?", (run_id,)).fetchall()
    return wall, dict(rows)


def overhead(tmp: Path, n: int, passes: int) -> str:
    order = [m for p in range(passes) for m in (("none", "all") if p % 2 == 0 else ("all", "none"))]
    walls: dict[str, list[float]] = {"none": [], "all": []}
    evals: dict[str, list[float]] = {"none": [], "all": []}
    waits: list[float] = []
    for i, mode in enumerate(order):
        wall, metrics = _run(tmp / f"o{i}", f"dataset.test={n}", "lm.cache=false", f"tracking.traces={mode}",
                             "metric.summaries=[]")
        walls[mode].append(wall)
        evals[mode].append(metrics["seconds"])
        if mode == "all":
            assert metrics["traces_logged"] == n, metrics
            waits.append(metrics["trace_wait_seconds"])
        print(f"  {mode:4s} wall {wall:.1f} s, evaluation {metrics['seconds']:.1f} s", file=sys.stderr)

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    ratio_wall = mean(walls["all"]) / mean(walls["none"]) - 1
    ratio_eval = mean(evals["all"]) / mean(evals["none"]) - 1
    wait_share = mean(waits) / mean(walls["none"])

    def spread(xs: list[float]) -> str:
        return f"{min(xs):.1f}-{max(xs):.1f}" if len(xs) > 1 else "-"

    rows = [["`tracking.traces: none`", f"{mean(walls['none']):.1f}", spread(walls["none"]),
             f"{mean(evals['none']):.1f}", "-", "-"],
            ["`tracking.traces: all`", f"{mean(walls['all']):.1f}", spread(walls["all"]), f"{mean(evals['all']):.1f}",
             f"{mean(waits):.2f} ({wait_share:.1%})", f"{ratio_wall:+.1%} (evaluation alone {ratio_eval:+.1%})"]]
    return (f"## Tracking-overhead: traces + assessments on vs off, {n} routing items, embedded LM, cache off\n\n"
            + table(["run", "wall s (mean)", "wall s (range)", "evaluation s", "run's wait for the writer s",
                     "overhead (means)"], rows)
            + f"\n\n{len(order)} runs in one session, alternating ({', '.join(order)}); means per mode, n = {n} "
            "examples each. Wall = the whole `workbench run` subprocess (imports, baselines, evaluation, waiting for "
            "the trace writer, logging). The wait is the one cost traces add for certain (the embedded LM's traces "
            "are written after its evaluation, beside the run's other logging); its share is of the untraced wall. "
            "Where the ranges overlap, the difference of the means is the machine's noise, not the traces'. "
            "Goal: <= 5%.\n")


def throughput(tmp: Path, m: int) -> str:
    sets = [f"dataset.test={m}", "lm.backend=recorded", "lm.model=synthetic", "metric.summaries=[]"]
    _, plain = _run(tmp / "t-none", *sets, "tracking.traces=none")
    wall, traced = _run(tmp / "t-all", *sets, "tracking.traces=all")
    assert traced["traces_logged"] == m, traced
    size_none = (tmp / "t-none" / "mlflow.db").stat().st_size
    size_all = (tmp / "t-all" / "mlflow.db").stat().st_size
    per_1000 = (size_all - size_none) / m * 1000 / 1e6
    total = traced["seconds"] + traced["trace_wait_seconds"]
    rows = [["evaluation (traces off)", f"{plain['seconds']:.1f}", "-"],
            ["evaluation (traces on)", f"{traced['seconds']:.1f}", "-"],
            ["wait for the writer after the evaluation", f"{traced['trace_wait_seconds']:.1f}", "-"],
            ["writer busy (writing)", f"{traced['trace_write_seconds']:.1f}",
             f"{m / traced['trace_write_seconds']:.0f} traces/s"],
            ["evaluation + wait", f"{total:.1f}", f"{m / total:.0f} examples/s end to end"]]
    return (f"## Tracking-throughput: {m} routing items, recorded LM (LM time ~0), traces on, SQLite store\n\n"
            + table(["phase", "seconds", "rate"], rows)
            + f"\n\nOne run each (n = {m} traces). Store size: {per_1000:.1f} MB per 1,000 traces (SQLite file after "
            f"the traced run minus after the untraced one: {size_all / 1e6:.0f} MB vs {size_none / 1e6:.0f} MB). "
            "Each trace holds ~9 spans (program, candidate narrowing, demo retrieval, predictor, adapter format with "
            "the demos, the LM call's messages and reply, parse, metric) and 2 assessments.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--m", type=int, default=4500)
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    try:
        sections = [throughput(tmp, args.m)]
        if not args.skip_overhead:
            sections.insert(0, overhead(tmp, args.n, args.passes))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(sections))
    write_sections(sections, "benchmarks/tracking.py")


if __name__ == "__main__":
    main()
