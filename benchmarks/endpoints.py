"""Endpoint benchmarks: concurrency against a latency-bound endpoint, flakiness, fast errors.

Every LM call goes to `workbench.lm.mock_server.MockEndpoint` on 127.0.0.1, which sleeps a
fixed latency per completion (it stands for a remote API: the time is the server's, not
this machine's CPU) and answers deterministically, so scores are comparable across runs.

1. threads: `workbench run` (tracked in a temporary MLflow store) on 100 routing items with
   eval.threads 1, 2, 4, 8, 16 at 200 ms per call: evaluation throughput as a ratio to one thread;
2. workers: `workbench sweep --workers K` (K = 1, 2, 4; Optuna and MLflow on SQLite) on the
   routing sweep spec, trials per minute as a ratio to one worker;
3. flaky: 100 items with 30% of calls failing transiently (429/503/reset, Retry-After 0)
   against the clean run: failed examples, calls that reached the server, wall time;
4. retry: a run with 10% of calls failing (no retries), then `workbench eval --retry-failed`
   once the endpoint recovered, against a clean run on the same items;
5. errors: wall time of `workbench run` on every bad spec in tests/test_bad_input.py
   (median of 3, registry index warm) and of `workbench run --help`.

    python benchmarks/endpoints.py                  # all five (~15 min on 2 cores)
    python benchmarks/endpoints.py --parts errors
"""

from __future__ import annotations

import argparse
import statistics
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
SWEEP = ROOT / "experiments" / "sweep_routing_clinc150.yaml"


def _endpoint(server: MockEndpoint, **lm) -> list[str]:
    settings = {"backend": "openai", "model": server.model, "api_base": server.base_url, "cache": "false",
                "timeout_s": 5, **lm}
    return [f"lm.{k}={v}" for k, v in settings.items()]


def _run(overrides: list[str]):
    import workbench
    from workbench.runner import run

    return run(workbench.load_spec(ROUTING, overrides))


def threads(folder: Path, n: int, latency: float) -> str:
    rows, base = [], None
    with MockEndpoint(latency=latency) as server:
        for k in (1, 2, 4, 8, 16):
            before = server.stats()["completions"]
            server.max_active = 0
            start = time.perf_counter()
            outcome = _run([*_endpoint(server), f"dataset.test={n}", "dataset.train=2000", "dataset.dev=20",
                            f"eval.threads={k}", f"tracking.uri=sqlite:///{folder}/threads.db",
                            f"tracking.artifact_root={folder}/artifacts"])
            wall = time.perf_counter() - start
            result = outcome.result
            per_s = result.n / result.seconds
            base = base or per_s
            rows.append([str(k), str(result.n), f"{result.seconds:.1f}", f"{per_s:.1f}", f"{per_s / base:.2f}",
                         str(server.max_active), f"{wall:.1f}", str(server.stats()["completions"] - before)])
            print("  threads", rows[-1], flush=True)
    return ("## Endpoint-threads: evaluation throughput by eval.threads\n\n"
            f"`workbench run` (routing, {n} CLINC150 test items, tracked in a temporary SQLite store, LM cache off) "
            f"against the mock endpoint at {latency * 1000:.0f} ms per call. `eval s` is the evaluation alone; "
            "`run s` adds data loading, the classical baselines and MLflow logging (the first run also fits the "
            "TF-IDF models and creates the store; later runs in the process reuse the fits). `peak in flight`: most "
            "requests the server was serving at once.\n\n"
            + table(["threads", "n", "eval s", "examples/s", "ratio to 1 thread", "peak in flight", "run s",
                     "server calls"], rows) + "\n")


def workers(folder: Path, trials: int, dev: int, latency: float) -> str:
    import workbench
    from workbench.sweep.budget import Budget
    from workbench.sweep.driver import sweep

    rows, base, steady_base = [], None, None
    with MockEndpoint(latency=latency) as server:
        for k in (1, 2, 4):
            overrides = [*_endpoint(server), f"dataset.dev={dev}", "dataset.train=2000",
                         f"tracking.uri=sqlite:///{folder}/sweep-{k}.db", f"tracking.artifact_root={folder}/artifacts",
                         "search.pruner=none", "search.sampler=random"]
            spec = workbench.load_spec(SWEEP, overrides)
            start, start_wall = time.perf_counter(), time.time()
            result = sweep(spec, trials=trials, workers=k, storage_url=f"sqlite:///{folder}/study-{k}.db",
                           study_name="scaling", budget=Budget(), say=lambda *_: None)
            minutes = (time.perf_counter() - start) / 60
            import optuna

            finished = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
            done = len(finished)
            per_min = done / minutes
            base = base or per_min
            # steady state: from the k-th finished trial (every worker has started) to the last one
            ends = sorted(t.datetime_complete.timestamp() for t in finished)
            steady = (len(ends) - k) / ((ends[-1] - ends[k - 1]) / 60)
            steady_base = steady_base or steady
            first = min(t.datetime_start.timestamp() for t in result.study.trials) - start_wall
            rows.append([str(k), str(done), f"{minutes * 60:.0f}", f"{per_min:.1f}", f"{per_min / base:.2f}",
                         f"{first:.0f}", f"{steady:.1f}", f"{steady / steady_base:.2f}"])
            print("  workers", rows[-1], flush=True)
    return ("## Endpoint-workers: sweep trials per minute by worker count\n\n"
            f"`workbench sweep --workers K` on {trials} trials of the routing sweep spec ({dev} dev items per trial, "
            f"eval.threads 1, LM cache off, Optuna and MLflow on SQLite) against the mock endpoint at "
            f"{latency * 1000:.0f} ms per call. Wall time includes starting the worker processes (each imports DSPy, "
            "MLflow and scikit-learn, about 4.5 s of CPU, and fits its TF-IDF models once) and the parent run's "
            "summary; `first trial s`: when the first trial started. `steady trials/min`: from the moment every "
            "worker had finished a trial to the last trial (what more trials would approach).\n\n"
            + table(["workers", "trials", "seconds", "trials/min", "ratio to 1 worker", "first trial s",
                     "steady trials/min", "steady ratio"], rows) + "\n")


def flaky(folder: Path, n: int, rate: float) -> str:
    rows = []
    scores = {}
    for name, script in (("clean", {}), (f"{rate:.0%} transient failures",
                                         {"fail_rate": rate, "fail_with": ["429", "503", "reset"], "retry_after": 0})):
        with MockEndpoint(latency=0.05, **script) as server:
            start = time.perf_counter()
            outcome = _run([*_endpoint(server), f"dataset.test={n}", "dataset.train=2000", "dataset.dev=20",
                            "eval.threads=4", "tracking.enabled=false"])
            wall = time.perf_counter() - start
            result = outcome.result
            calls = server.stats()["completions"]
            scores[name] = result.score
            rows.append([name, str(result.n), f"{result.score:.3f}", str(result.failures),
                         str(result.usage.retries), str(calls), f"{result.seconds:.1f}", f"{wall:.1f}"])
            print("  flaky", rows[-1], flush=True)
    clean_calls = int(rows[0][5])
    ratio = int(rows[1][5]) / clean_calls
    return ("## Endpoint-flaky: 100 items against a flaky endpoint\n\n"
            f"`workbench run` (routing, {n} items, eval.threads 4, lm.retries 5) against the mock endpoint at 50 ms "
            f"per call, clean and with {rate:.0%} of calls answered 429, 503 or a dropped connection (seeded, "
            f"Retry-After 0). Server calls with failures: {ratio:.2f}× the clean run's; same score: "
            f"{'yes' if scores[rows[0][0]] == scores[rows[1][0]] else 'no'}.\n\n"
            + table(["endpoint", "n", "score", "failed examples", "retries", "server calls", "eval s", "run s"], rows)
            + "\n")


def retry(folder: Path, n: int) -> str:
    """A run on an endpoint failing 10% of calls (no retries), then --retry-failed once it recovered."""
    from mlflow.tracking import MlflowClient

    from workbench.commands import _quiet_libraries
    from workbench.console import Reporter
    from workbench.retry_failed import retry_failed

    _quiet_libraries()
    uri = f"sqlite:///{folder}/retry.db"
    track = [f"tracking.uri={uri}", f"tracking.artifact_root={folder}/artifacts", "eval.max_lm_error_rate=1",
             f"dataset.test={n}", "dataset.train=2000", "dataset.dev=20", "eval.threads=4"]
    with MockEndpoint(latency=0.05, faults=["ok"] * 9 + ["503"]) as server:
        flaky = _run([*_endpoint(server, retries=0), *track])
        lost = flaky.result.lm_failures
        server.faults, server._cycle = [], None
        before = server.stats()["completions"]
        start = time.perf_counter()
        retried, _ = retry_failed(flaky.run_id, tracking_uri=uri, overrides=[], reporter=Reporter(quiet=True))
        seconds = time.perf_counter() - start
        paid = server.stats()["completions"] - before
    with MockEndpoint(latency=0.05) as server:
        clean = _run([*_endpoint(server), *track])
    same_items = MlflowClient(uri).get_run(retried.run_id).data.tags["workbench.eval_fingerprint"] == \
        MlflowClient(uri).get_run(clean.run_id).data.tags["workbench.eval_fingerprint"]
    rows = [["flaky run (10% of calls 503, lm.retries 0)", str(flaky.result.n), f"{flaky.result.score:.3f}",
             str(lost), str(flaky.result.usage.calls)],
            ["--retry-failed of it", str(retried.result.n), f"{retried.result.score:.3f}",
             str(retried.result.lm_failures), f"{retried.result.usage.calls} ({paid} at the server)"],
            ["clean run, same items", str(clean.result.n), f"{clean.result.score:.3f}", str(clean.result.lm_failures),
             str(clean.result.usage.calls)]]
    print("  retry", rows, flush=True)
    return ("## Endpoint-retry: `workbench eval --retry-failed` after a flaky run\n\n"
            f"{n} routing items against the mock endpoint (50 ms per call) answering every 10th call 503, with "
            "lm.retries 0 so the failures stay in the table; then the endpoint recovers and the run's failures are "
            f"retried ({seconds:.1f} s, including loading the data and the program). LM calls of the retry = examples "
            f"lost: {'yes' if retried.result.usage.calls == lost else 'no'}; merged score = clean run's: "
            f"{'yes' if retried.result.score == clean.result.score else 'no'}; same evaluation items: "
            f"{'yes' if same_items else 'no'}.\n\n"
            + table(["run", "n", "score", "examples lost to the endpoint", "LM calls"], rows) + "\n")


def errors(folder: Path, repeats: int) -> str:
    from tests.conftest import write_spec
    from tests.test_bad_input import CASES, FIELD_CASES

    def timed(args: list[str]) -> tuple[float, int, str]:
        times, code, err = [], 0, ""
        for _ in range(repeats):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                                  cwd=ROOT)
            times.append(time.perf_counter() - start)
            code, err = proc.returncode, proc.stderr.strip()
        return statistics.median(times), code, err

    track = ["--set", f"tracking.uri=sqlite:///{folder}/errors.db"]
    subprocess.run([sys.executable, "-m", "workbench.cli", "list"], capture_output=True, cwd=ROOT)  # warm the index
    rows = []
    for name, (text, _) in sorted(CASES.items()):
        path = folder / f"{name}.yaml"
        path.write_text(text)
        seconds, code, _ = timed(["run", str(path), *track])
        rows.append([name, "spec text", f"{seconds:.2f}", str(code)])
    for name, (changes, field, _) in sorted(FIELD_CASES.items()):
        path = write_spec(folder / f"{name}.yaml", **changes)
        seconds, code, _ = timed(["run", str(path), *track])
        rows.append([name, field, f"{seconds:.2f}", str(code)])
    seconds, code, _ = timed(["run", "--help"])
    rows.append(["`workbench run --help`", "-", f"{seconds:.2f}", str(code)])
    times = [float(r[2]) for r in rows[:-1]]
    over = [r[0] for r in rows[:-1] if float(r[2]) > 1.5]
    return ("## Endpoint-errors: time to report a bad input\n\n"
            f"`workbench run BAD_SPEC` as a subprocess, median of {repeats}, for each of the {len(rows) - 1} bad specs "
            "of tests/test_bad_input.py (the registries' on-disk index warm). Median over cases "
            f"{statistics.median(times):.2f} s, worst {max(times):.2f} s; over 1.5 s: "
            f"{', '.join(over) if over else 'none'}.\n\n"
            + table(["bad input", "field", "seconds", "exit"], rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="threads,workers,flaky,retry,errors")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--dev", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    parts = args.parts.split(",")
    sections = []
    with tempfile.TemporaryDirectory(prefix="wb-endpoints-") as tmp:
        folder = Path(tmp)
        if "threads" in parts:
            sections.append(threads(folder, args.n, args.latency))
        if "workers" in parts:
            sections.append(workers(folder, args.trials, args.dev, args.latency))
        if "flaky" in parts:
            sections.append(flaky(folder, args.n, 0.3))
        if "retry" in parts:
            sections.append(retry(folder, args.n))
        if "errors" in parts:
            sections.append(errors(folder, args.repeats))
    write_sections(sections, "benchmarks/endpoints.py")
    for section in sections:
        print(section)


if __name__ == "__main__":
    main()
