"""Every optimizer measured: what each costs to compile and what it gains on test.

    python benchmarks/optimizers.py                          # every row, both tasks (many hours)
    python benchmarks/optimizers.py --task clinc --rows zero-shot,retrieval_demos,MIPROv2
    python benchmarks/optimizers.py --hours 2                # start no row after 2 hours
    python benchmarks/optimizers.py --budget-only            # the budget-stop section only
    python benchmarks/optimizers.py --reflection-lm URL      # proposals/reflection on an endpoint

Each row is the workbench's own `run()` of the task's default spec with only the optimizer
changed, on the embedded LM, LM response cache off (every call is made and counted), tracked
in MLflow (experiment `bench-optimizers`, where each run keeps its final instructions and
demos). Rows are saved to `benchmarks/optimizers_rows.json` as they finish (with the commit
they ran on and their per-example scores), so a stopped run keeps its rows and a later one
adds the missing ones; `--fresh` re-measures. The tables in RESULTS.md are drawn from that
file: test score with CI, compile LM calls and minutes, dev score, and paired tests of each
row against zero-shot and against retrieval_demos on the same test items.

The budget section runs `workbench run` as a subprocess with `--max-lm-calls` below what
MIPROv2 and GEPA plan, and reads the outcome back from the MLflow store: the run's status,
its spend against the budget and the `workbench.budget_exhausted` tag.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROWS_FILE = ROOT / "benchmarks" / "optimizers_rows.json"
STORE = "sqlite:///mlruns/bench-optimizers.db"
OFF = ["lm.cache=false", f"tracking.uri={STORE}", "tracking.experiment=bench-optimizers"]
TASKS = {
    "clinc": {"spec": ROOT / "experiments" / "routing_clinc150.yaml", "n": 1000, "title": "CLINC150 10 domains",
              "dev": 200},
    "bfcl": {"spec": ROOT / "experiments" / "tools_bfcl_simple.yaml", "n": 400, "title": "BFCL simple_python (AST)",
             "dev": 20, "params": {"MIPROv2": {"minibatch": False}},  # light's minibatch of 35 > the 20 dev items
             # at 256 tokens a depth-2 COPRO proposal (it quotes earlier attempts) was cut off and failed the run
             "extra": {"COPRO": ["optimizer.prompt_max_tokens=512"]}},
}


def task_params(task: str, optimizer: str, params: dict) -> dict:
    """A row's parameters with the task's adjustments (also inside a sequence's steps)."""
    extra = TASKS[task].get("params", {})
    if optimizer == "sequence":
        return {**params, "steps": [{**step, "params": task_params(task, step["name"], step.get("params", {}))}
                                    for step in params["steps"]]}
    return {**params, **extra.get(optimizer, {})}
# (row key, optimizer, params, extra overrides): bounded so that each compiles in minutes on
# 2 cores; the parameters are printed in the table. COPRO scores every candidate on the whole
# train set, so it sees 100 train items; SIMBA ends by scoring up to 5 programs on the whole
# train set (75,000 calls on CLINC150's 15,000), so it sees 300. `optimizer.max_train`, not
# `dataset.train`: the router's candidate classifier still learns from the whole split (with
# dataset.train=300 it did not, and SIMBA's row fell to 0.709 for that reason alone).
ROWS = [
    ("zero-shot", "none", {}, []),
    ("retrieval_demos", "retrieval_demos", {"k": 5}, []),
    ("MIPROv2", "MIPROv2", {"auto": "light"}, []),
    ("BootstrapFewShot", "BootstrapFewShot", {"max_bootstrapped_demos": 4, "max_labeled_demos": 4}, []),
    ("LabeledFewShot", "LabeledFewShot", {"k": 5}, []),
    ("GEPA", "GEPA", {"auto": "light"}, []),
    ("BootstrapFewShotWithRandomSearch", "BootstrapFewShotWithRandomSearch",
     {"num_candidate_programs": 4, "max_bootstrapped_demos": 4, "max_labeled_demos": 4}, []),
    ("SIMBA", "SIMBA", {"max_steps": 4, "num_candidates": 4, "bsize": 32}, ["optimizer.max_train=300"]),
    ("COPRO", "COPRO", {"breadth": 4, "depth": 2}, ["optimizer.max_train=100"]),
    ("KNNFewShot", "KNNFewShot", {"k": 5}, []),
    # does instruction search add anything on top of retrieved demos? (instructions only: no demo search)
    ("retrieval_demos+MIPROv2", "sequence", {"steps": [
        {"name": "retrieval_demos", "params": {"k": 5}},
        {"name": "MIPROv2", "params": {"auto": "light", "max_bootstrapped_demos": 0, "max_labeled_demos": 0}}]}, []),
    ("retrieval_demos+GEPA", "sequence", {"steps": [
        {"name": "retrieval_demos", "params": {"k": 5}}, {"name": "GEPA", "params": {"auto": "light"}}]}, []),
]
BASES = ("zero-shot", "retrieval_demos")
# Rows measured on code older than a fix that changes what they measure: (task, fixing commit,
# row keys, what the old code did). Such rows stay in the table, marked, until re-measured.
STALE = [("bfcl", "9393f9b", {"BootstrapFewShot", "LabeledFewShot", "BootstrapFewShotWithRandomSearch", "MIPROv2",
                              "SIMBA", "KNNFewShot"},
          "the function caller replaced the `call` predictor's compiled demos with none (until 795a703), and "
          "DSPy's adapter dropped raw training examples copied in as demos (their fields are not the "
          "predictor's), so these demo optimizers were scored, and chose among their candidates, as zero-shot"),
         ("bfcl", "8899585", {"COPRO"}, "COPRO also proposed and scored instructions for `select`, which simple_python "
          "never calls: half its compile calls and minutes bought nothing"),
         ("bfcl", "d772733", {"MIPROv2", "retrieval_demos+MIPROv2"}, "MIPROv2 also proposed for `select`, which "
          "simple_python never calls, and sized its trials for two predictors (twice as many)")]


def load_rows() -> dict:
    return json.loads(ROWS_FILE.read_text(encoding="utf-8")) if ROWS_FILE.exists() else {}


def save_rows(rows: dict) -> None:
    tmp = ROWS_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(ROWS_FILE)


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def instructions(program) -> str:
    parts = []
    for name, predictor in program.named_predictors():
        text = " ".join(predictor.signature.instructions.split())
        pool = getattr(program, "demo_pool", None)
        demos = f"{pool.k} retrieved per query" if pool is not None and getattr(pool, "k", 0) else len(predictor.demos)
        parts.append(f"{name}: {text[:160]}{'…' if len(text) > 160 else ''} [{demos} demos]")
    return " | ".join(parts)


def measure(task: str, key: str, optimizer: str, params: dict, extra: list[str], n: int,
            reflection_lm: str | None) -> dict:
    import workbench
    from workbench.console import Reporter

    cfg = TASKS[task]
    params = task_params(task, optimizer, params)
    extra = [*extra, *cfg.get("extra", {}).get(key, [])]
    overrides = OFF + [f"dataset.test={n}", f"optimizer.name={optimizer}", f"optimizer.params={json.dumps(params)}",
                       f"tracking.run_name=bench-{task}-{key}", "optimizer.prompt_max_tokens=256", *extra]
    if reflection_lm:
        overrides += ["optimizer.reflection_lm.backend=openai", f"optimizer.reflection_lm.api_base={reflection_lm}"]
    spec = workbench.load_spec(cfg["spec"], overrides)
    started, code = time.perf_counter(), commit()  # the code this process runs, whatever the checkout later
    out = workbench.run(spec, reporter=Reporter(quiet=False))
    r = out.result
    table = r.table
    return {"task": task, "key": key, "optimizer": optimizer, "params": params, "extra": extra, "n": r.n,
            "score": r.score, "ci": list(r.ci), "compile_lm_calls": out.compile_lm_calls,
            "compile_minutes": out.compile_seconds / 60, "eval_seconds_per_item": r.seconds / max(r.n, 1),
            "dev_score": out.dev_score, "lm_requests": r.usage.requests, "lm_cache_hits": r.usage.cache_hits,
            "failures": r.failures, "run_id": out.run_id, "instructions": instructions(out.program),
            "ids": [str(i) for i in table["id"]], "scores": [float(s) for s in table["score"]],
            "commit": code, "measured": time.strftime("%Y-%m-%d %H:%M"),
            "wall_minutes": (time.perf_counter() - started) / 60}


def stale(row: dict) -> str:
    """Why a row no longer measures what today's code does ("" when it does)."""
    for task, fixed, keys, why in STALE:
        if row["task"] == task and row["key"] in keys:
            newer = subprocess.run(["git", "merge-base", "--is-ancestor", fixed, row["commit"]], cwd=ROOT,
                                   capture_output=True)
            if newer.returncode != 0:
                return f"before {fixed} {why}"
    return ""


def paired(row: dict, base: dict | None) -> str:
    from workbench.comparison.stats import paired_test

    if base is None or base is row:
        return ""
    mine = dict(zip(row["ids"], row["scores"]))
    theirs = dict(zip(base["ids"], base["scores"]))
    common = [i for i in row["ids"] if i in theirs]
    if len(common) < 30:
        return "n/a"
    p = paired_test([theirs[i] for i in common], [mine[i] for i in common])
    star = " **" if p.significant else ""
    return f"{p.difference:+.3f} [{p.ci[0]:+.3f}, {p.ci[1]:+.3f}] p={p.p_value:.3g}{star}"


def leaked_ids(task: str) -> set[str]:
    """Test items whose input occurs word for word in train or dev (BFCL reuses questions across
    categories): retrieved demos can carry their answer, so gains are also shown without them."""
    import workbench
    from workbench.data import column
    from workbench.data.loading import load_dataset
    from workbench.registry import datasets

    spec = workbench.load_spec(TASKS[task]["spec"], [])
    data = load_dataset(datasets.get(spec.dataset.name), spec.dataset.params, spec.source)
    name = data.input_fields[0]
    seen = set(column(data.splits["train"], name)) | set(column(data.splits["validation"], name))
    test = data.splits["test"]
    return {str(i) for i, text in zip(column(test, "id"), column(test, name)) if text in seen}


def leakage_note(task: str, mine: list[dict], bases: dict) -> str:
    leaked = leaked_ids(task) & set(mine[0]["ids"])
    if len(leaked) < 0.01 * len(mine[0]["ids"]):  # a stray duplicate or two moves no figure
        return ""

    def without(row: dict) -> dict:
        pairs = [(i, sc) for i, sc in zip(row["ids"], row["scores"], strict=True) if i not in leaked]
        return {**row, "ids": [i for i, _ in pairs], "scores": [sc for _, sc in pairs]}

    lines = []
    for r in mine:
        kept = without(r)
        cols = [f"{sum(kept['scores']) / len(kept['scores']):.3f} (n={len(kept['ids'])})"]
        cols += [f"vs {b} {paired(kept, without(base))}" for b, base in bases.items()
                 if base is not None and base is not r]
        lines.append(f"- **{r['key']}**: " + "; ".join(cols))
    return (f"\n\n{len(leaked)} of these {len(mine[0]['ids'])} test inputs occur word for word in the task's "
            "train or dev split, where retrieved demos can carry the answer. The same rows without those items:\n\n"
            + "\n".join(lines))


def section(task: str, rows: dict) -> str:
    from benchmarks.results import table

    cfg = TASKS[task]
    mine = [rows[f"{task}/{k}"] for k, *_ in ROWS if f"{task}/{k}" in rows]
    if not mine:
        return ""
    bases = {b: rows.get(f"{task}/{b}") for b in BASES}
    why_stale = {r["key"]: stale(r) for r in mine}  # one git call per row
    body = []
    for r in mine:
        dev = "" if r.get("dev_score") is None else f"{r['dev_score']:.3f}"
        body.append([f"{r['key']} `{json.dumps(r['params'])}`" + (f" {' '.join(r['extra'])}" if r["extra"] else ""),
                     str(r["n"]),
                     f"{r['score']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" + ("§" if why_stale[r["key"]] else ""),
                     dev,
                     str(r["compile_lm_calls"]), f"{r['compile_minutes']:.1f}",
                     f"{r['eval_seconds_per_item']:.2f}" + ("†" if r.get("shared_cpu") else ""),
                     paired(r, bases["zero-shot"]), paired(r, bases["retrieval_demos"]), r["commit"]])
    missing = [k for k, *_ in ROWS if f"{task}/{k}" not in rows]
    instr = "\n".join(f"- **{r['key']}** (run `{r['run_id']}`): {r['instructions']}" for r in mine)
    return (f"## Optimizers-{task}: every optimizer on {cfg['title']}, embedded LM\n\n"
            f"Rows measured {min(r['measured'] for r in mine)} to {max(r['measured'] for r in mine)} (each row's "
            "code in the commit column; the stamp above is when this table was last written). "
            f"The task's default spec with only the optimizer changed; test items: a seeded sample of n (the same "
            f"items in every row), dev {cfg['dev']} items (COPRO and SIMBA never see dev: they choose on the "
            "training examples they are given, so their dev column stays empty). Paired columns: difference in test score against that "
            "row on the same items, 95% bootstrap CI, McNemar's exact p (** p < 0.05). Compile minutes and seconds "
            "per item are wall time on 2 cores; the rows come from several work sessions, each on its own machine, "
            "so seconds compare only between rows measured within the same few hours.\n\n"
            + table(["optimizer (params)", "n", "test score [95% CI]", "dev score", "compile LM calls",
                     "compile min", "eval s/item", "vs zero-shot", "vs retrieval_demos", "commit"], body)
            + ("\n\n† The CPU was shared with other work (or the process paused) during this row: its test score "
               "stands, its seconds do not compare with the other rows." if any(r.get("shared_cpu") for r in mine) else "")
            + "".join(f"\n\nLM response cache on in the {r['key']} row: {r['lm_cache_hits']:,} of its evaluation's "
                      f"{r['lm_requests']:,} LM requests were replays of an identical earlier request, so its seconds "
                      "per item may be below a cold run's." for r in mine if r.get("lm_cache_hits"))
            + "".join(f"\n\n§ Stale: {why}; to be re-measured."
                      for why in dict.fromkeys(filter(None, why_stale.values())))
            + leakage_note(task, mine, bases)
            + ("\n\nNot measured yet: " + ", ".join(missing) + "." if missing else "")
            + "\n\nFinal instructions and demo counts (the full program is in each MLflow run):\n\n" + instr + "\n")


BUDGET_CASES = [("MIPROv2 light", ["optimizer.name=MIPROv2", 'optimizer.params={"auto": "light"}'], 400),
                ("GEPA light", ["optimizer.name=GEPA", 'optimizer.params={"auto": "light"}'], 400),
                ("evaluation only (zero-shot)", ["optimizer.name=none", "optimizer.params={}"], None)]


def budget_section(n: int, *, run: bool = True) -> str:
    """MIPROv2 and GEPA under an LM-call budget below their plan, as a user would run them
    (`run=False`: only rebuild the table from the store's latest budget runs)."""
    from benchmarks.results import table
    from mlflow.tracking import MlflowClient

    spec = TASKS["clinc"]["spec"]
    rows, found = [], {}
    for label, sets, compile_share in BUDGET_CASES:
        cap = n + compile_share if compile_share else n // 2
        name = f"bench-budget-{label.split()[0]}"
        planned, code = "", "–"
        if run:
            args = [sys.executable, "-m", "workbench.cli", "run", str(spec), "--max-lm-calls", str(cap),
                    "--allow-over-estimate", *[a for s in OFF + [f"dataset.test={n}", "optimizer.prompt_max_tokens=256",
                                                                 f"tracking.run_name={name}"] + sets for a in ("--set", s)]]
            proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
            planned = next((line for line in proc.stdout.splitlines() + proc.stderr.splitlines()
                            if "planned LM calls" in line), "").split("planned LM calls: ")[-1].split(" = ")[0]
            code = f"exit {proc.returncode}"
            if proc.returncode:
                print(f"  {label}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}", flush=True)
        client = MlflowClient(STORE)
        experiment = client.get_experiment_by_name("bench-optimizers")
        runs = client.search_runs([experiment.experiment_id], f"tags.mlflow.runName = '{name}'",
                                  order_by=["attributes.start_time DESC"], max_results=1) if experiment else []
        if not runs:
            rows.append([label, planned, str(cap), "–", "–", "no run", "–", "–", "–", "–", "–", code])
            continue
        r = found[label] = runs[0]
        m, t = r.data.metrics, r.data.tags
        spent = int(m.get("spend_lm_calls", -1))
        planned = planned or (f"~{int(m['planned_lm_calls']):,}" if "planned_lm_calls" in m else _replanned(r))
        minutes = ((r.info.end_time or r.info.start_time) - r.info.start_time) / 60000
        rows.append([label, planned, str(cap), str(spent), "yes" if spent <= cap + 1 else "**no**", r.info.status,
                     t.get("workbench.budget_exhausted", "")[:90] or "–", r.info.run_id,
                     "" if "dev_score" not in m else f"{m['dev_score']:.3f}",
                     f"{m['score']:.3f} (n={int(m.get('n_examples', 0))})" if "score" in m else "–",
                     f"{m.get('compile_seconds', 0) / 60:.1f} / {minutes:.1f}",
                     f"{code}, {t.get('mlflow.source.git.commit', '')[:7]}"])
        print(f"  {label}: budget {cap}, spent {spent}, {r.info.status}, {code}", flush=True)
    zero = found.get(BUDGET_CASES[-1][0])
    original = _program_state(MlflowClient(STORE), zero.info.run_id) if zero else None
    for row in rows:  # the run id stands in the 'program' column until the states are compared
        if len(row[7]) == 32:
            row[7] = _evaluated_program(MlflowClient(STORE), row[7], original)
    return ("## Optimizers-budget: runs stopped by an LM-call budget (CLINC150 domains, embedded LM)\n\n"
            f"`workbench run experiments/routing_clinc150.yaml --max-lm-calls B --allow-over-estimate` with "
            f"{n} test items, cache off, as a subprocess; outcome read back from the MLflow store. The evaluation's "
            "calls are reserved first, compile gets the rest; goal: spent ≤ budget + 1 (one call in flight). "
            "'program' says whether the evaluated program differs from the spec as written (instructions, demos).\n\n"
            + table(["optimizer", "planned calls", "budget", "spent", "within", "run status", "budget_exhausted tag",
                     "program", "dev score", "test score", "compile / run min", "CLI, commit"], rows) + "\n")


def _replanned(r) -> str:
    """The plan of a run logged before runs kept it: the same estimate, from its logged params."""
    from workbench.optimize.estimate import compile_calls

    p = r.data.params
    params = {k.split(".", 2)[2]: json.loads(v) if v[:1] in "0123456789[{tfn" else v  # flat, as runs log them
              for k, v in p.items() if k.startswith("optimizer.params.")}
    calls, _ = compile_calls(p.get("optimizer.name", "none"), params, predictors=1, per_example=1,
                             train=15000, val=int(p.get("dataset.dev", 200)))
    return f"~{calls + int(r.data.metrics.get('planned_n_examples', r.data.metrics.get('n_examples', 0))):,}"


def _program_state(client, run_id: str) -> dict | None:
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(Path(client.download_artifacts(run_id, "program.json", tmp)).read_text())
    except Exception:  # noqa: BLE001  no program logged
        return None


def _evaluated_program(client, run_id: str, original: dict | None) -> str:
    """'as written' or what changed against `original` (the uncompiled program's state: the
    zero-shot budget run's, which no optimizer touched)."""
    state = _program_state(client, run_id)
    if state is None or original is None:
        return "–"
    changed = []
    for name, part in state.items():
        before = original.get(name, {})
        if isinstance(part, dict) and "signature" in part:
            if part["signature"].get("instructions") != before.get("signature", {}).get("instructions"):
                changed.append("instructions")
            if len(part.get("demos", [])) != len(before.get("demos", [])):
                changed.append(f"{len(part.get('demos', []))} demos")
    return ", ".join(changed) or "as written"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), action="append", help="default: both")
    parser.add_argument("--rows", help="comma-separated row keys (default: all, in table order)")
    parser.add_argument("--clinc-n", type=int, default=TASKS["clinc"]["n"])
    parser.add_argument("--bfcl-n", type=int, default=TASKS["bfcl"]["n"])
    parser.add_argument("--hours", type=float, default=None, help="start no new row after this many hours")
    parser.add_argument("--fresh", action="store_true", help="re-measure rows already in optimizers_rows.json")
    parser.add_argument("--reflection-lm", help="OpenAI-compatible base URL for proposals and reflection")
    parser.add_argument("--budget-only", action="store_true")
    parser.add_argument("--budget-n", type=int, default=100)
    parser.add_argument("--no-budget", action="store_true")
    parser.add_argument("--budget-report", action="store_true", help="rebuild the budget table from the store only")
    parser.add_argument("--report", action="store_true", help="rebuild the optimizer tables from the rows file only")
    args = parser.parse_args()
    from benchmarks.results import write_sections

    os.chdir(ROOT)
    deadline = time.monotonic() + args.hours * 3600 if args.hours else None
    wanted = set(args.rows.split(",")) if args.rows else None
    known = {k for k, *_ in ROWS}
    if wanted and wanted - known:
        parser.error(f"unknown rows {sorted(wanted - known)}; known: {', '.join(k for k, *_ in ROWS)}")
    rows = load_rows()
    tasks = args.task or ["clinc", "bfcl"]
    sizes = {"clinc": args.clinc_n, "bfcl": args.bfcl_n}
    if args.report:
        write_sections([s for s in (section(t, rows) for t in TASKS) if s], "benchmarks/optimizers.py")
        return
    if not (args.budget_only or args.budget_report):
        for task in tasks:
            for key, optimizer, params, extra in ROWS:
                if (wanted and key not in wanted) or (f"{task}/{key}" in rows and not args.fresh):
                    continue
                if deadline and time.monotonic() > deadline:
                    print(f"time is up: {task}/{key} not started", flush=True)
                    continue
                print(f"== {task} / {key}", flush=True)
                try:
                    rows[f"{task}/{key}"] = measure(task, key, optimizer, params, extra, sizes[task], args.reflection_lm)
                except Exception as exc:  # noqa: BLE001  one row failing must not lose the others
                    print(f"  {task}/{key} failed: {type(exc).__name__}: {exc}", flush=True)
                    continue
                save_rows(rows)
                write_sections([s for s in (section(t, rows) for t in TASKS) if s], "benchmarks/optimizers.py")
    if args.budget_report:
        write_sections([budget_section(args.budget_n, run=False)], "benchmarks/optimizers.py")
    elif not args.no_budget and (args.budget_only or not deadline or time.monotonic() < deadline):
        write_sections([budget_section(args.budget_n)], "benchmarks/optimizers.py")


if __name__ == "__main__":
    main()
