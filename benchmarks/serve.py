"""Serving benchmark: `/predict` over HTTP vs the loaded bundle in-process, for routing, RAG
and function calling, and the plain-prompt export scored through its client vs inside DSPy.

For each kind: a run in a temporary MLflow store, exported, then on the embedded LM with the
response cache off (every request reaches the model):

1. bundle size and load time (`workbench.load`: checksums, program rebuild, indexes, warm-up);
2. one client: each request in-process, then the same over HTTP to `workbench serve --no-cache`
   (alternating, so machine drift hits both): the median per-request latency ratio;
3. 4 concurrent HTTP clients; then 16 clients for 60 s: every request must answer 200.

Then a routing run exported with `--format prompt`: its score through `client.py` against
`llama_cpp.server` vs inside DSPy on the same items, and the client's seconds per call.
Run it alone: a second LM process on the same 2 cores would halve both sides.

    python benchmarks/serve.py        # --requests 24 --load-seconds 60 --prompt-items 300
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
import workbench.tracking  # noqa: E402
from workbench.registry import datasets  # noqa: E402

CLI = [sys.executable, "-m", "workbench.cli"]

# kind -> (spec, run overrides, requests: n distinct payloads not in the run's test items)
KINDS = {"routing": "routing_clinc150", "rag": "rag_xquad", "function calling": "tools_bfcl_simple"}
RUN_OVERRIDES = {"routing": ["dataset.test=40"], "rag": ["dataset.test=20"], "function calling": ["dataset.test=20"]}


def payloads(kind: str, n: int) -> list[dict]:
    """Distinct requests from the end of the test split (the run scores its start)."""
    if kind == "routing":
        rows = datasets.get("clinc150_domains")().splits["test"]
        return [{"text": t} for t in list(dict.fromkeys(rows["text"]))[-n:]]
    if kind == "rag":
        rows = datasets.get("xquad_en")().splits["test"]
        return [{"question": q} for q in list(dict.fromkeys(rows["question"]))[-n:]]
    rows = datasets.get("bfcl_simple_python")().splits["test"]
    pairs = list(zip(rows["question"], rows["functions"]))[-n:]
    return [{"question": q, "functions": f} for q, f in pairs]


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ms = np.array(latencies) * 1000
    return {"n": len(latencies), "per_s": len(latencies) / seconds, "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95))}


def post(url: str, payload: dict) -> tuple[bool, float]:
    body = json.dumps(payload).encode()
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


def make_run(folder: str, kind: str) -> tuple[str, str]:
    uri = f"sqlite:///{folder}/mlflow.db"
    overrides = [*RUN_OVERRIDES[kind], f"tracking.uri={uri}", f"tracking.artifact_root={folder}/artifacts",
                 f"tracking.experiment={KINDS[kind]}"]
    spec = ROOT / "experiments" / f"{KINDS[kind]}.yaml"
    run = subprocess.run([*CLI, "run", str(spec), "--quiet", *[a for o in overrides for a in ("--set", o)]],
                         capture_output=True, text=True, check=True)
    return run.stdout.split("run_id=")[1].split()[0], uri


def measure_kind(folder: str, kind: str, requests: list[dict], load_seconds: float) -> tuple[list[list[str]], dict]:
    """Export, load, in-process vs HTTP at 1 and 4 clients, sustained 16 clients; table rows and facts."""
    run_id, uri = make_run(folder, kind)
    bundle = Path(folder) / f"bundle-{kind.replace(' ', '-')}"
    subprocess.run([*CLI, "export", run_id, "--out", str(bundle), "--tracking-uri", uri], capture_output=True,
                   text=True, check=True)
    report = json.loads((bundle / "report.json").read_text())
    start = time.perf_counter()
    program = workbench.load(bundle, lm_overrides={"cache": False})
    load_s = time.perf_counter() - start
    program.predict(requests[0])  # first-call costs (index, grammar) are not a request's
    port = free_port()
    url = f"http://127.0.0.1:{port}/predict"
    server = start_server(bundle, port)
    n = len(requests) // 3
    try:
        post(url, requests[0])
        local_s, http_s, failed = [], [], 0
        for payload in requests[:n]:  # alternating, so drift in the machine's speed falls on both alike
            t0 = time.perf_counter()
            program.predict(payload)
            local_s.append(time.perf_counter() - t0)
            ok, seconds = post(url, payload)
            http_s.append(seconds)
            failed += not ok
        local, one = summary(local_s, sum(local_s)), summary(http_s, sum(http_s))
        ratio = float(np.median(np.array(http_s) / np.array(local_s)))
        del program
        rows = [[kind, "in-process", "1", str(local["n"]), f"{local['per_s']:.2f}", f"{local['p50']:.0f}",
                 f"{local['p95']:.0f}", "1.00", "–"],
                [kind, "HTTP (alternating)", "1", str(one["n"]), f"{one['per_s']:.2f}", f"{one['p50']:.0f}",
                 f"{one['p95']:.0f}", f"{ratio:.3f}", str(failed)]]
        stats, failed = http_round(url, requests[n:2 * n], 4)
        rows.append([kind, "HTTP", "4", str(stats["n"]), f"{stats['per_s']:.2f}", f"{stats['p50']:.0f}",
                     f"{stats['p95']:.0f}", f"{stats['p50'] / local['p50']:.2f}", str(failed)])
        stats, failed = sustained(url, requests, 16, load_seconds)
        rows.append([kind, f"HTTP, {load_seconds:.0f} s sustained", "16", str(stats["n"]), f"{stats['per_s']:.2f}",
                     f"{stats['p50']:.0f}", f"{stats['p95']:.0f}", f"{stats['p50'] / local['p50']:.2f}", str(failed)])
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
    finally:
        server.terminate()
        server.wait(30)
    for row in rows:
        print("  ", row, flush=True)
    return rows, {"kind": kind, "bundle_mb": report["bundle_bytes"] / 1e6, "load_s": load_s, "fresh_load_s": report["load_seconds"],
                  "score": report["score"],
                  "verified": report["verified_score"], "n": report["n"], "metric": report["metric"],
                  "server": f"{health['requests']} requests, {health['errors']} errors"}


def measure_prompt(folder: str, items: int) -> dict:
    """A routing run on `items` test messages, exported as a plain prompt: inside DSPy vs through client.py."""
    uri = f"sqlite:///{folder}/prompt.db"
    overrides = [f"dataset.test={items}", f"tracking.uri={uri}", f"tracking.artifact_root={folder}/prompt-artifacts",
                 "lm.cache=false"]  # every item reaches the model in the run too, as it does through the client
    run = subprocess.run([*CLI, "run", str(ROOT / "experiments" / "routing_clinc150.yaml"), "--quiet",
                          *[a for o in overrides for a in ("--set", o)]], capture_output=True, text=True, check=True)
    run_id = run.stdout.split("run_id=")[1].split()[0]
    out = Path(folder) / "prompt"
    subprocess.run([*CLI, "export", run_id, "--format", "prompt", "--out", str(out), "--tracking-uri", uri],
                   capture_output=True, text=True, check=True)
    report = json.loads((out / "report.json").read_text())
    client = workbench.tracking.client(uri)
    metrics = client.get_run(run_id).data.metrics
    report["dspy_seconds_per_call"] = metrics.get("seconds_per_example", float("nan"))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24, help="requests per concurrency level, per kind")
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of: {', '.join(KINDS)}")
    parser.add_argument("--prompt-items", type=int, default=300, help="test items for the plain-prompt comparison")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    rows, facts = [], []
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as folder:
        for kind in kinds:
            print(f"{kind}: run, export, load, serve ...", flush=True)
            kind_rows, kind_facts = measure_kind(folder, kind, payloads(kind, args.requests * 3), args.load_seconds)
            rows += kind_rows
            facts.append(kind_facts)
        prompt = measure_prompt(folder, args.prompt_items) if args.prompt_items else None

    bundles = table(["kind", "bundle MB", "load s (export)", "load s (here)", "run score", "reloaded", "n",
                     "server's count"],
                    [[f["kind"], f"{f['bundle_mb']:.2f}", f"{f['fresh_load_s']:.2f}", f"{f['load_s']:.2f}",
                      f"{f['score']:.3f} {f['metric']}",
                      f"{f['verified']:.3f}", str(f["n"]), f["server"]] for f in facts])
    section = (
        "## Serve: HTTP /predict vs the loaded bundle in-process, per program kind\n\n"
        "Each kind's spec is run on the embedded LM, exported, loaded (checksums, program rebuild, indexes, "
        "warm-up) and served by `workbench serve --no-cache` (FastAPI + uvicorn, one process); distinct requests "
        "from the end of each test split, every one reaching the model. With one client, in-process and HTTP "
        "alternate on the same requests and the ratio is the median per-request latency ratio HTTP/in-process; "
        "for 4 and 16 clients it is p50 over the in-process p50. The embedded model answers one call at a time, "
        "so more clients queue. n per row is the requests column. Load time (checksums, program rebuild, the GGUF "
        "model, index loading, warm-up such as fitting the routing ranker on 15,000 messages) is measured twice: "
        "by export, in the process that prepared the run's data (so the embedding model was already loaded "
        "there), and here after the previous kind.\n\n" + bundles + "\n\n"
        + table(["kind", "path", "clients", "requests", "req/s", "p50 ms", "p95 ms", "latency ratio", "failed"], rows)
        + "\n")
    sections = [section] if rows else []
    if prompt:
        sections.append(
            "## Plain-prompt: the compiled routing prompt through client.py vs inside DSPy\n\n"
            f"The default routing spec run on {prompt['n']} CLINC150 test items, exported with `--format prompt`; "
            f"the client rendered byte-identical messages on all {prompt['rendering_checked']} items, then answered "
            f"each against the same GGUF served by `llama_cpp.server` on 127.0.0.1.\n\n"
            + table(["n", "inside DSPy", "through client.py", "paired difference", "95% CI", "test, p",
                     "client failures", "s/call client", "s/example DSPy run"],
                    [[str(prompt["n"]), f"{prompt['dspy_score']:.3f}", f"{prompt['plain_score']:.3f}",
                      f"{prompt['difference']:+.4f}", f"[{prompt['difference_ci'][0]:+.4f}, {prompt['difference_ci'][1]:+.4f}]",
                      f"{prompt['test']}, {prompt['p_value']:.3g}", str(prompt["plain_failures"]),
                      f"{prompt['client_seconds_per_call']:.3f}", f"{prompt['dspy_seconds_per_call']:.3f}"]])
            + "\n\nThe client's seconds per call include HTTP to the server and the TF-IDF demo and candidate "
            "selection; the DSPy column is the run's own seconds per example, in-process, so the ratio of the two "
            "is the overhead of leaving DSPy and the process.\n")
    write_sections(sections, "benchmarks/serve.py")
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
