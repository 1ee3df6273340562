"""Serving benchmark: `/predict` over HTTP vs calling the loaded bundle in-process.

Makes a routing run in a temporary MLflow store, exports it, then measures on the
embedded LM with the response cache off (every request reaches the model):

1. bundle load time (`workbench.load`, checksums + program rebuild + model warm-up);
2. one client: each CLINC150 test message in-process, then the same over HTTP to
   `workbench serve --no-cache` (alternating, so machine drift hits both): calls/s, p50/p95,
   and the median per-message latency ratio;
3. 4 and 16 concurrent HTTP clients: requests/s and p50/p95 as ratios to in-process;
4. a sustained load of 16 clients for 60 s: every request must answer 200.

Run it alone: a second LM process on the same 2 cores would halve both sides.

    python benchmarks/serve.py                    # --requests 48 --load-seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import workbench  # noqa: E402
from benchmarks.results import table, write_sections  # noqa: E402
from benchmarks.servers import free_port, wait_until_up  # noqa: E402
from workbench.registry import datasets  # noqa: E402

SPEC = ROOT / "experiments" / "routing_clinc150.yaml"


def messages(n: int) -> list[str]:
    """Distinct test messages, taken from the end of the test split (the run scores its start)."""
    rows = datasets.get("clinc150_domains")().splits["test"]
    texts = list(dict.fromkeys(rows["text"]))
    return texts[-n:]


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ms = np.array(latencies) * 1000
    return {"n": len(latencies), "per_s": len(latencies) / seconds, "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95))}


def post(url: str, text: str) -> tuple[bool, float]:
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = json.loads(response.read())
            ok = response.status == 200 and isinstance(body, dict) and "error" not in body
    except (urllib.error.URLError, OSError, ValueError):
        ok = False
    return ok, time.perf_counter() - start


def http_round(url: str, texts: list[str], clients: int) -> tuple[dict[str, float], int]:
    """All `texts` sent by `clients` threads, each sending its share one request at a time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda t: post(url, t), texts))
    seconds = time.perf_counter() - start
    return summary([s for _, s in results], seconds), sum(not ok for ok, _ in results)


def sustained(url: str, texts: list[str], clients: int, duration: float) -> tuple[dict[str, float], int]:
    """`clients` threads posting back to back for `duration` seconds."""
    results: list[tuple[bool, float]] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def client(offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            outcome = post(url, texts[i % len(texts)])
            with lock:
                results.append(outcome)
            i += clients

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summary([s for _, s in results], time.perf_counter() - start), sum(not ok for ok, _ in results)


def start_server(bundle: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(bundle), "--port", str(port),
                               "--no-cache"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_until_up(server, f"http://127.0.0.1:{port}/health", what="workbench serve")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    parser.add_argument("--load-seconds", type=float, default=60)
    args = parser.parse_args()
    texts = messages(args.requests * 4)

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        overrides = ["dataset.test=40", f"tracking.uri={uri}", f"tracking.artifact_root={folder}/artifacts"]
        print("making a routing run to export (in a subprocess, so this process holds only the bundle) ...", flush=True)
        cli = [sys.executable, "-m", "workbench.cli"]
        run = subprocess.run([*cli, "run", str(SPEC), "--quiet", *[a for o in overrides for a in ("--set", o)]],
                             capture_output=True, text=True, check=True)
        run_id = run.stdout.split("run_id=")[1].split()[0]
        bundle = Path(folder) / "bundle"
        subprocess.run([*cli, "export", run_id, "--out", str(bundle), "--tracking-uri", uri], capture_output=True,
                       text=True, check=True)
        report = json.loads((bundle / "report.json").read_text())
        start = time.perf_counter()
        program = workbench.load(bundle, lm_overrides={"cache": False})
        load_s = time.perf_counter() - start
        program(text=texts[0])  # first-call costs (retriever index, grammar) are not a request's

        port = free_port()
        url = f"http://127.0.0.1:{port}/predict"
        server = start_server(bundle, port)
        try:
            post(url, texts[0])
            # One client: each text in-process, then the same text over HTTP, alternating, so drift
            # in the machine's speed falls on both alike.
            local_s, http_s, failed = [], [], 0
            for text in texts[: args.requests]:
                t0 = time.perf_counter()
                program(text=text)
                local_s.append(time.perf_counter() - t0)
                ok, seconds = post(url, text)
                http_s.append(seconds)
                failed += not ok
            local, one = summary(local_s, sum(local_s)), summary(http_s, sum(http_s))
            ratio = float(np.median(np.array(http_s) / np.array(local_s)))
            rows = [["in-process (loaded bundle)", "1", str(local["n"]), f"{local['per_s']:.2f}", f"{local['p50']:.0f}",
                     f"{local['p95']:.0f}", "1.00", "1.00", "–"],
                    ["HTTP /predict (same texts, alternating)", "1", str(one["n"]), f"{one['per_s']:.2f}",
                     f"{one['p50']:.0f}", f"{one['p95']:.0f}", f"{one['per_s'] / local['per_s']:.2f}",
                     f"{one['p50'] / local['p50']:.2f}", str(failed)]]
            print(f"bundle load {load_s:.2f} s; in-process {local['per_s']:.2f} calls/s; HTTP/in-process per-text "
                  f"median latency ratio {ratio:.3f}", flush=True)
            del program
            for k, clients in enumerate((4, 16)):
                batch = texts[(k + 1) * args.requests:(k + 2) * args.requests]
                stats, failed = http_round(url, batch, clients)
                rows.append(["HTTP /predict", str(clients), str(stats["n"]), f"{stats['per_s']:.2f}",
                             f"{stats['p50']:.0f}", f"{stats['p95']:.0f}", f"{stats['per_s'] / local['per_s']:.2f}",
                             f"{stats['p50'] / local['p50']:.2f}", str(failed)])
                print("  ", rows[-1], flush=True)
            stats, failed = sustained(url, texts, 16, args.load_seconds)
            rows.append([f"HTTP /predict, {args.load_seconds:.0f} s sustained", "16", str(stats["n"]),
                         f"{stats['per_s']:.2f}", f"{stats['p50']:.0f}", f"{stats['p95']:.0f}",
                         f"{stats['per_s'] / local['per_s']:.2f}", f"{stats['p50'] / local['p50']:.2f}", str(failed)])
            print("  ", rows[-1], flush=True)
            health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
        finally:
            server.terminate()
            server.wait(30)

    section = (
        "## Serve: HTTP /predict vs the loaded bundle in-process\n\n"
        f"A CLINC150-domains routing run (5 retrieved demos, top-2 candidates, grammar-constrained label; "
        f"scored {report['score']:.3f} on {report['n']} test items, {report['verified_score']:.3f} after reload) exported "
        f"and served by `workbench serve --no-cache` (FastAPI + uvicorn, one process). Distinct CLINC150 test "
        f"messages, every request reaches the model. Bundle load (checksums, program rebuild, model warm-up): "
        f"**{load_s:.2f} s**. Ratios are HTTP over in-process, measured in this one run; with one client the two "
        f"alternate on the same texts, and the median per-text latency ratio HTTP/in-process is **{ratio:.3f}**. "
        f"The embedded model "
        f"answers one call at a time, so more clients raise throughput only by overlapping HTTP and JSON work "
        f"with the model and lengthen latency by queueing.\n\n"
        + table(["path", "clients", "requests", "req/s", "p50 ms", "p95 ms", "req/s ratio", "p50 ratio",
                 "failed"], rows)
        + f"\n\nServer's own count after the run: {health['requests']} requests, {health['errors']} errors.\n")
    write_sections([section], "benchmarks/serve.py")
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
