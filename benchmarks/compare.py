"""How long `workbench.compare` takes on 20 runs × 4,500 examples (target: under 5 s).

Writes 20 runs into a temporary MLflow store through the workbench's own tracking code
(per-example tables of 4,500 0/1 scores, the size of CLINC150's test split), then times
the comparison: reading every table back, the leaderboard, 19 paired tests with bootstrap
intervals, changed examples and prompt diffs; and once more with every pair (190).

    python benchmarks/compare.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results import table, write_sections  # noqa: E402
from workbench.comparison.report import compare  # noqa: E402
from workbench.spec import TrackingSpec  # noqa: E402
from workbench.tracking import tracked_run  # noqa: E402

RUNS, EXAMPLES = 20, 4500


def make_store(folder: Path) -> str:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    tracking = TrackingSpec(uri=uri, artifact_root=str(folder / "artifacts"))
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, EXAMPLES).astype(str)
    for i in range(RUNS):
        scores = (rng.uniform(size=EXAMPLES) < 0.7 + 0.01 * i).astype(float)
        with tracked_run(tracking, kind="run", experiment="bench", run_name=f"run{i}",
                         tags={"workbench.task": "routing"}) as run:
            run.log_metrics({"score": scores.mean(), "score_ci_low": scores.mean() - 0.01,
                             "score_ci_high": scores.mean() + 0.01, "seconds_per_example": 0.1 + 0.01 * i})
            run.log_table(pd.DataFrame({"id": [f"x{j}" for j in range(EXAMPLES)], "text": ["message"] * EXAMPLES,
                                        "gold": truth, "predicted": truth, "score": scores}), "predictions.json")
            run.log_dict({"predict": {"signature": {"instructions": f"Route it ({i}).", "fields": []}, "demos": []}},
                         "program.json")
    return uri


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="compare-bench-") as folder:
        uri = make_store(Path(folder))
        rows = []
        for label, all_pairs in (("each run vs the first (19 pairs)", False), ("every pair (190 pairs)", True)):
            start = time.perf_counter()
            result = compare(["bench"], tracking_uri=uri, all_pairs=all_pairs)
            seconds = time.perf_counter() - start
            rows.append([label, str(len(result.runs)), str(EXAMPLES), str(len(result.pairs)), f"{seconds:.2f}"])
            print("  ", rows[-1], flush=True)
    section = ("## Compare: 20 runs × 4,500 examples\n\n"
               "`workbench.compare` on a temporary SQLite MLflow store: reading the 20 per-example tables back, the "
               "leaderboard, paired bootstrap intervals and exact McNemar tests, changed examples and prompt diffs. "
               "Target: under 5 s.\n\n"
               + table(["comparison", "runs", "examples each", "pairs", "seconds"], rows) + "\n")
    write_sections([section], "benchmarks/compare.py")
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
