"""Sweep benchmarks: worker scaling, what a sweep finds, and tracking/storage overhead.

1. scaling: trials per minute with 1, 2 and 4 workers against one local OpenAI-compatible
   server (`python -m llama_cpp.server`), on SQLite and on PostgreSQL storage, as ratios to
   one worker on the same storage (LM cache off: every call reaches the server);
2. quality: the routing sweep spec on the embedded LM (trials scored on dev), best-so-far by
   trial count; then the best trial's spec and the hand-written default spec on the same
   test items, with the paired difference, its 95% CI and McNemar's p;
3. overhead: time inside MLflow and Optuna-storage calls (the trial's own thread; heartbeats
   run beside it) as a fraction of trial time, for SQLite and PostgreSQL.

    python benchmarks/sweep.py                      # all three (~35 min on 2 cores)
    python benchmarks/sweep.py --parts overhead
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WORKBENCH_SWEEP_HEARTBEAT_S", "5")

import optuna  # noqa: E402

import workbench  # noqa: E402
from benchmarks.results import table, write_sections  # noqa: E402
from benchmarks.servers import free_port, wait_until_up  # noqa: E402
from workbench.comparison.stats import paired_test  # noqa: E402
from workbench.sweep.budget import Budget  # noqa: E402
from workbench.sweep.driver import sweep  # noqa: E402

SWEEP_SPEC = ROOT / "experiments" / "sweep_routing_clinc150.yaml"
PG = "postgresql://postgres@127.0.0.1:5432"
State = optuna.trial.TrialState


def quiet(*_args) -> None:
    pass


class PgDatabase:
    """A throwaway database on the local PostgreSQL server."""

    def __init__(self) -> None:
        import psycopg2

        self.name = f"wb_bench_{uuid.uuid4().hex[:8]}"
        self.conn = psycopg2.connect(f"{PG}/postgres", connect_timeout=5)
        self.conn.autocommit = True
        self.conn.cursor().execute(f"CREATE DATABASE {self.name}")
        self.url = f"{PG}/{self.name}"

    def drop(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self.name,))
            cur.execute(f"DROP DATABASE IF EXISTS {self.name}")
        self.conn.close()


def start_llama_server(port: int) -> subprocess.Popen:
    from workbench.lm.embedded import resolve_model_path

    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_model_path("smollm2-135m-instruct")),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--model_alias", "smollm2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_until_up(proc, f"http://127.0.0.1:{port}/v1/models", what="llama_cpp.server")


def scaling(folder: Path, trials: int, dev: int) -> str:
    port = free_port()
    server = start_llama_server(port)
    rows = []
    try:
        for storage_kind in ("sqlite", "postgresql"):
            base = None
            for workers in (1, 2, 4):
                dbs = [PgDatabase(), PgDatabase()] if storage_kind == "postgresql" else []
                storage = dbs[0].url if dbs else f"sqlite:///{folder}/scaling-{workers}.db"
                tracking = dbs[1].url if dbs else f"sqlite:///{folder}/mlflow-scaling-{workers}.db"
                overrides = [f"dataset.dev={dev}", "dataset.train=2000", "lm.backend=openai", "lm.model=smollm2",
                             f"lm.api_base=http://127.0.0.1:{port}/v1", "lm.response_format=json_object_schema",
                             "lm.cache=false", f"tracking.uri={tracking}",
                             f"tracking.artifact_root={folder}/artifacts", "search.pruner=none", "search.sampler=random"]
                spec = workbench.load_spec(SWEEP_SPEC, overrides)
                start = time.perf_counter()
                result = sweep(spec, trials=trials, workers=workers, storage_url=storage, study_name="scaling",
                               budget=Budget(), say=quiet)
                minutes = (time.perf_counter() - start) / 60
                done = len(result.study.get_trials(states=(State.COMPLETE, State.PRUNED)))
                per_min = done / minutes
                base = base or per_min
                rows.append([storage_kind, str(workers), str(done), f"{minutes * 60:.0f}", f"{per_min:.2f}",
                             f"{per_min / base:.2f}"])
                print("  ", rows[-1], flush=True)
                for db in dbs:
                    db.drop()
    finally:
        server.terminate()
        server.wait(30)
    return ("## Sweep-scaling: trials per minute by worker count\n\n"
            f"`workbench sweep --workers K` on {trials} trials of the routing sweep spec ({dev} dev items per trial, "
            "2,000 training messages, LM cache off; MLflow on SQLite, or on a second PostgreSQL database beside Optuna's), every worker calling one local `python -m llama_cpp.server` "
            "(SmolLM2-135M Q4_1, 2 cores). Wall time includes starting the worker processes. The server decodes "
            "one request at a time, so extra workers only overlap the client-side work (data, TF-IDF, compile, "
            "tracking) with decoding; on 2 cores, 4 workers also compete with the server for CPU.\n\n"
            + table(["storage", "workers", "trials", "seconds", "trials/min", "ratio to 1 worker"], rows) + "\n")


def quality(folder: Path, trials: int, dev: int, test: int, extra: list[str] = ()) -> str:
    """The sweep on `dev` items, its verdict against the spec as written, then on `test` items: the
    spec as written, the trial best on dev (what a tool without the verdict would ship) and the
    recommended spec, with paired tests against the spec as written."""
    import yaml

    from workbench.sweep.summary import best_spec
    from workbench.sweep.verdict import items_for, resolution

    uri = f"sqlite:///{folder}/mlflow-quality.db"
    track = [f"tracking.uri={uri}", f"tracking.artifact_root={folder}/artifacts"]
    spec = workbench.load_spec(SWEEP_SPEC, [f"dataset.dev={dev}", f"dataset.test={test}", *track, *extra])
    started = time.perf_counter()
    result = sweep(spec, trials=trials, storage_url=f"sqlite:///{folder}/quality.db", study_name=f"quality-{dev}",
                   budget=Budget(), say=lambda line: print(line, flush=True))
    sweep_minutes = (time.perf_counter() - started) / 60
    study = result.study
    best_so_far, rows = float("-inf"), []
    for t in study.trials:
        if t.state == State.COMPLETE:
            best_so_far = max(best_so_far, t.value)
        if t.number + 1 in (1, 2, 4, 8, 12, 16, 24, 32) or t.number == len(study.trials) - 1:
            rows.append([str(t.number + 1), f"{best_so_far:.3f}"])
    off = ["tracking.enabled=false", f"dataset.test={test}", f"dataset.dev={dev}", *extra]
    default = workbench.run(workbench.load_spec(SWEEP_SPEC, off)).result
    scored = {"spec as written (trial 0)": default}
    picks = {"best on dev": study.best_trial, "recommended by the verdict": result.best[0]}
    for label, trial in picks.items():
        if trial.user_attrs.get("incumbent"):
            scored[f"{label} (trial {trial.number}, the spec as written)"] = default
            continue
        path = folder / f"trial-{trial.number}.yaml"
        path.write_text(yaml.safe_dump(best_spec(study, trial)))
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        scored[f"{label} (trial {trial.number}: {params})"] = workbench.run(workbench.load_spec(path, off)).result
    test_rows = []
    for label, r in scored.items():
        assert list(r.table["id"]) == list(default.table["id"])
        pair = paired_test(default.table["score"], r.table["score"])
        test_rows.append([label, f"{r.score:.3f} [{r.ci[0]:.3f}, {r.ci[1]:.3f}]",
                          "" if r is default else f"{pair.difference:+.3f} [{pair.ci[0]:+.3f}, {pair.ci[1]:+.3f}] "
                                                  f"p={pair.p_value:.3g} ({pair.better} better, {pair.worse} worse)"])
    return (f"## Sweep-quality-dev{dev}: does the sweep beat the routing spec as written, judged on {dev} dev items?\n\n"
            f"`experiments/sweep_routing_clinc150.yaml` on the embedded LM: {len(study.trials)} trials (TPE, median "
            f"pruner, trial 0 = the spec as written), each scored on the same {dev} dev items "
            f"(±{resolution(dev):.2f} is noise at 95%; the sweep advises about {items_for(0.05)} items to see 0.05); "
            f"{sweep_minutes:.0f} min. Best dev score so far by trial count:\n\n"
            + table(["trials", "best dev score"], rows)
            + f"\n\nThe sweep's verdict: {result.verdict}.\n\nOn {test} CLINC150 test items (the same items in every row; "
            "LM cache on, so items two specs share cost nothing twice), each paired against the spec as written:\n\n"
            + table(["spec", f"test accuracy [95% CI] (n={test})", "vs the spec as written [95% CI], McNemar p"],
                    test_rows) + "\n")


class CallTimer:
    """Wall time spent inside methods of the given classes on the calling thread; nested
    calls count once; the heartbeat thread's writes are not the trial's time."""

    def __init__(self, classes: list[type], skip: set[str]):
        self.seconds = 0.0
        self.local = threading.local()
        self.originals = []
        for cls in classes:
            for name, fn in list(vars(cls).items()):
                plain = callable(fn) and not isinstance(fn, (staticmethod, classmethod, type))
                if plain and not name.startswith("_") and name not in skip:
                    self.originals.append((cls, name, fn))
                    setattr(cls, name, self._wrap(fn))

    def _wrap(self, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if getattr(self.local, "depth", 0) or threading.current_thread() is not threading.main_thread():
                return fn(*args, **kwargs)
            self.local.depth = 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.local.depth = 0
        return timed

    def restore(self) -> None:
        for cls, name, fn in self.originals:
            setattr(cls, name, fn)


def overhead(folder: Path, trials: int, dev: int) -> str:
    from mlflow.tracking import MlflowClient
    from optuna.storages import RDBStorage

    rows = []
    for storage_kind in ("sqlite", "postgresql"):
        db = PgDatabase() if storage_kind == "postgresql" else None
        storage = db.url if db else f"sqlite:///{folder}/overhead.db"
        spec = workbench.load_spec(SWEEP_SPEC, [f"dataset.dev={dev}", "dataset.train=2000", "lm.cache=false",
                                                f"tracking.uri=sqlite:///{folder}/mlflow-overhead-{storage_kind}.db",
                                                f"tracking.artifact_root={folder}/artifacts", "search.pruner=none"])
        timer = CallTimer([MlflowClient, RDBStorage], skip={"record_heartbeat"})
        try:
            result = sweep(spec, trials=trials, storage_url=storage, study_name="overhead", budget=Budget(), say=quiet)
            spent = timer.seconds
            done = result.study.trials  # read before the database is dropped
        finally:
            timer.restore()
            if db:
                db.drop()
        trial_seconds = sum(t.duration.total_seconds() for t in done if t.duration)
        rows.append([storage_kind, str(len(done)), f"{trial_seconds / len(done):.2f}",
                     f"{spent / len(done):.3f}", f"{spent / trial_seconds:.1%}"])
        print("  ", rows[-1], flush=True)
    return ("## Sweep-overhead: tracking and storage per trial\n\n"
            f"In-process sweep of {trials} trials ({dev} dev items each, embedded LM, cache off). Time inside "
            "MlflowClient and Optuna RDBStorage methods on the trial's thread (run creation, params, metrics, "
            "the per-example table, program state and prompts as artifacts, trial state and attributes; not the "
            "heartbeat thread) over the trials' own durations, and including the sweep's end (parent run plots). "
            "Target: at most 5%.\n\n"
            + table(["storage", "trials", "s per trial", "tracking + storage s per trial", "fraction"], rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["overhead", "quality", "scaling"],
                        choices=["overhead", "quality", "scaling"])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--dev", type=int, default=40)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override for the quality part (e.g. lm.backend=recorded to try the script quickly)")
    args = parser.parse_args()
    sections = []
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        folder = Path(tmp)
        for part in args.parts:
            print(f"{part} ...", flush=True)
            if part == "overhead":
                sections.append(overhead(folder, min(args.trials, 6), 20))
            elif part == "quality":
                sections.append(quality(folder, args.trials, args.dev, args.test, args.set))
            else:
                sections.append(scaling(folder, 6, 16))
            write_sections(sections[-1:], "benchmarks/sweep.py")
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
