"""Gate benchmark: what `workbench gate` adds to the run it gates.

Against `workbench.lm.mock_server.MockEndpoint` on 127.0.0.1 (a fixed latency per call
stands for a remote API; answers are deterministic), in a temporary MLflow store:

1. `workbench run SPEC` on N routing items (the baseline), timed as a subprocess;
2. `workbench gate SPEC --against RUN --junit --markdown`: the same spec run again on the
   baseline's items, then the checks and both reports, timed as a subprocess;
3. `workbench gate RUN2 --against RUN`: gating a finished run (no LM call at all).

The gate's extra time is (2) - (1); the goal is <= 5% of (1) at N = 1,000.

    python benchmarks/gate.py                      # N = 1000, 200 ms per call, 8 threads (~2 min)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results import table, write_sections  # noqa: E402
from workbench.lm.mock_server import MockEndpoint  # noqa: E402

ROUTING = ROOT / "experiments" / "routing_clinc150.yaml"


def _cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start, result


def overhead(folder: Path, n: int, latency: float, threads: int) -> str:
    with MockEndpoint(latency=latency) as server:
        sets = [a for o in [f"dataset.test={n}", "lm.backend=openai", f"lm.model={server.model}",
                            f"lm.api_base={server.base_url}", "lm.cache=false", "lm.timeout_s=5",
                            f"eval.threads={threads}", f"tracking.uri=sqlite:///{folder}/mlflow.db",
                            f"tracking.artifact_root={folder}/artifacts"] for a in ("--set", o)]
        run_s, run = _cli("run", str(ROUTING), "--quiet", *sets)
        assert run.returncode == 0, run.stderr[-2000:]
        base = run.stdout.split("run_id=")[1].split()[0]
        calls_before = server.stats()["completions"]
        gate_s, gate = _cli("gate", str(ROUTING), "--against", base, "--quiet", "--junit", str(folder / "g.xml"),
                            "--markdown", str(folder / "g.md"), *sets)
        assert gate.returncode in (0, 1), gate.stderr[-2000:]
        gate_calls = server.stats()["completions"] - calls_before
        candidate = gate.stdout.split("candidate=")[1].split()[0]
        only_s, only = _cli("gate", candidate, "--against", base, "--quiet", "--tracking-uri",
                            f"sqlite:///{folder}/mlflow.db")
        assert only.returncode in (0, 1), only.stderr[-2000:]
    extra = gate_s - run_s
    rows = [["`workbench run` (baseline)", f"{run_s:.1f}", str(n), "-"],
            ["`workbench gate SPEC` (run + checks + reports)", f"{gate_s:.1f}", str(gate_calls),
             f"{extra:+.1f} s ({extra / run_s:+.1%})"],
            ["`workbench gate RUN` (a finished run)", f"{only_s:.1f}", "0", "-"]]
    return (f"## Gate: extra wall time over the run it gates, {n} routing items, mock endpoint at "
            f"{latency * 1000:.0f} ms per call, eval.threads {threads}\n\n"
            + table(["command", "wall s", "LM calls", "gate's extra"], rows)
            + f"\n\nOne run each (n = {n} examples; subprocesses, so each includes ~5 s of imports). The gate's "
            "extra is what it does besides the run: resolve the baseline, load its per-example table, evaluate on "
            "exactly its items, the paired test, JUnit and Markdown. Goal: <= 5% at 1,000 items.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        section = overhead(Path(tmp), args.n, args.latency, args.threads)
    print(section)
    write_sections([section], "benchmarks/gate.py")


if __name__ == "__main__":
    main()
