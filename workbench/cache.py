"""`workbench cache info|clear`: the LM response cache, what it holds, and emptying it safely.

DSPy keeps the cache under `.cache/dspy` ($WORKBENCH_CACHE/dspy): a diskcache FanoutCache of
16 SQLite shards. An entry's key is the SHA-256 of the request as DSPy sends it to the
backend — the model's identity (the embedded backend's `embedded/<file>-<SHA-256 of the
GGUF file>`, or an endpoint's `openai-compat/<model>@<api_base>`), the rendered messages,
the decoding settings (temperature, max_tokens, stop, seed, response_format with its
schema) and DSPy's rollout id; API keys are never part of it. A changed prompt, model file,
endpoint or setting is a new key, so a stale answer is never replayed.

Every process that uses the cache holds a shared lock on `.cache/dspy/.in-use` from its
first LM call to its exit; `clear` takes it exclusively without waiting, so it never
deletes under a running evaluation (one line, exit 2, nothing deleted).
"""

from __future__ import annotations

import argparse
import fcntl
import sqlite3
import time
from collections import Counter
from pathlib import Path

from workbench.errors import UserError
from workbench.paths import cache_dir

LOCK_NAME = ".in-use"
_held: list = []  # this process's shared lock (kept open until exit)


def folder() -> Path:
    return cache_dir() / "dspy"


def hold_shared_lock(path: Path) -> None:
    """Mark the cache in use by this process (released when the process exits)."""
    if _held:
        return
    handle = open(path / LOCK_NAME, "a")  # noqa: SIM115  held for the life of the process
    fcntl.flock(handle, fcntl.LOCK_SH)
    _held.append(handle)


def _shards(root: Path) -> list[Path]:
    return sorted(root.glob("[0-9][0-9][0-9]/cache.db"))


def _rows(root: Path, query: str, args: tuple = ()) -> list[tuple]:
    rows = []
    for shard in _shards(root):
        with sqlite3.connect(f"file:{shard}?mode=ro", uri=True, timeout=10) as conn:
            rows += conn.execute(query, args).fetchall()
    return rows


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _open(root: Path):
    from diskcache import FanoutCache
    from dspy.clients.disk_serialization import restricted_disk

    return FanoutCache(str(root), shards=16, timeout=10, disk=restricted_disk(frozenset()))


def entries_per_model(root: Path) -> Counter:
    cache = _open(root)
    counts: Counter = Counter()
    try:
        for key in cache:
            try:
                value = cache.get(key)
            except Exception:  # noqa: BLE001  an entry another DSPy version wrote: counted, not read
                value = None
            model = value.get("response_model") if isinstance(value, dict) else None
            counts[model or "(unreadable entry)"] += 1
    finally:
        cache.close()
    return counts


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _last_run_line(tracking_uri: str) -> str:
    path = tracking_uri.removeprefix("sqlite:///")
    if tracking_uri.startswith("sqlite:///") and not Path(path).is_file():
        return "last run: none yet in " + tracking_uri
    from workbench.tracking import client

    mlflow_client = client(tracking_uri)
    ids = [e.experiment_id for e in mlflow_client.search_experiments()]
    runs = mlflow_client.search_runs(ids, "metrics.lm_requests > 0", order_by=["attributes.start_time DESC"],
                                     max_results=1) if ids else []
    if not runs:
        return "last run: no run in the store has recorded its LM requests yet"
    run = runs[0]
    m = run.data.metrics
    hits, requests = int(m.get("lm_cache_hits", 0)), int(m["lm_requests"])
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.info.start_time / 1000))
    return (f"last run {run.info.run_name} ({run.info.run_id[:12]}, {started}): {hits} of {requests} LM requests "
            f"answered from the cache ({hits / requests:.0%})")


def _models_lines() -> list[str]:
    """The models converted or unpacked once (fine-tuning's float32 base copy: half a gigabyte)."""
    from workbench.paths import models_dir

    root = models_dir()
    found = sorted(p for p in root.iterdir() if p.is_dir() and ".tmp-" not in p.name) if root.is_dir() else []
    if not found:
        return []
    return [f"converted models: {root} ({_human(_disk_bytes(root))}; a folder removed is rebuilt when needed)",
            *(f"  {_human(_disk_bytes(p)):>9}  {p.name}" for p in found)]


def info(tracking_uri: str) -> list[str]:
    root = folder()
    if not _shards(root):
        return [f"LM response cache: {root} (empty: nothing cached yet)", *_models_lines(),
                _last_run_line(tracking_uri)]
    times = _rows(root, "select min(store_time), max(store_time), count(*) from Cache")
    count = sum(r[2] for r in times)
    stored = [t for r in times for t in r[:2] if t is not None]
    lines = [f"LM response cache: {root}",
             f"  {count:,} entries, {_human(_disk_bytes(root))} on disk"
             + (f"; oldest {time.strftime('%Y-%m-%d %H:%M', time.localtime(min(stored)))}, newest "
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(max(stored)))}" if stored else "")]
    for model, n in entries_per_model(root).most_common():
        lines.append(f"  {n:>8,}  {model}")
    lines.extend(_models_lines())
    lines.append(_last_run_line(tracking_uri))
    return lines


def clear(older_than_days: float | None) -> str:
    root = folder()
    if older_than_days is not None and older_than_days < 0:
        raise UserError(f"must be 0 or more, got {older_than_days:g}", field="--older-than")
    if not _shards(root):
        return f"nothing to clear: {root} holds no cache"
    handle = open(root / LOCK_NAME, "a")  # noqa: SIM115
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another workbench process is using the cache in {root}; nothing was deleted (try "
                            "again when it has finished)", field="cache clear") from None
        before = _disk_bytes(root)
        cache = _open(root)
        try:
            if older_than_days is None:
                removed = cache.clear()
            else:
                cutoff = time.time() - older_than_days * 86400
                keys = [r[0] for r in _rows(root, "select key from Cache where store_time < ?", (cutoff,))]
                removed = sum(bool(cache.delete(key)) for key in keys)
        finally:
            cache.close()
        freed = max(before - _disk_bytes(root), 0)
    finally:
        handle.close()
    scope = "" if older_than_days is None else f" older than {older_than_days:g} days"
    return f"removed {removed:,} entries{scope} from {root} ({_human(freed)} freed)"


def cache_command(args: argparse.Namespace) -> int:
    if args.action == "info":
        for line in info(args.tracking_uri):
            print(line)
    else:
        print(clear(args.older_than))
    return 0


def add_parser(sub, tracking_default: str) -> None:
    c = sub.add_parser("cache", help="the LM response cache: where it is, its size, entries per model, the last "
                                     "run's hit rate; clear it")
    c.add_argument("action", choices=["info", "clear"])
    c.add_argument("--older-than", type=float, metavar="DAYS", help="clear: only entries stored more than DAYS ago")
    c.add_argument("--tracking-uri", default=tracking_default, help="info: the store whose last run's hit rate to show")
