"""The trace writer process: MLflow's store calls off the evaluation's interpreter.

Writing a trace costs MLflow's SQLAlchemy store tens of milliseconds of Python; in the
evaluating process that time competes for the GIL with the LM's own Python (the embedded
backend samples every token in Python), which measured +5.5% on a 300-item embedded run.
So `TraceWriter` starts `python -m workbench.traces.process` (at low CPU priority unless it holds), hands it
each finished trace (pickled, over its stdin, from a feeder thread: `submit()` never blocks)
and at `close()` reads back what was written. The child runs `StoreWriter` (writer.py):
batches, the backlog and backoff of a failing store, a bounded grace at the end.

Even at low priority, a writer beside an LM that computes in this process (the embedded
backend: `Backend.in_process`) slows it: 2 llama.cpp threads on 2 cores lose whole time
slices to it. For such an LM the child holds the traces until the evaluation ends
(`hold`) and writes them then; for a remote endpoint it writes them as they come.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import time

from workbench.traces.recorder import TraceRecord
from workbench.traces.writer import CLOSE_GRACE_SECONDS, WriteStats

STATS_PREFIX = "WORKBENCH_TRACE_STATS "
_HEADER = struct.Struct(">I")


class TraceWriter:
    """Hands finished traces to a writer process; `close()` returns what it wrote (`WriteStats`)."""

    def __init__(self, uri: str, experiment_id: str, run_id: str | None, *, model_id: str | None = None,
                 batch_size: int = 64, interval: float = 0.5, hold: bool = False,
                 grace: float = CLOSE_GRACE_SECONDS):
        self.stats = WriteStats()
        config = {"uri": uri, "experiment_id": experiment_id, "run_id": run_id, "model_id": model_id,
                  "batch_size": batch_size, "interval": interval, "hold": hold, "grace": grace}
        self._errors = tempfile.TemporaryFile(mode="w+b")
        self._proc = subprocess.Popen([sys.executable, "-m", "workbench.traces.process", json.dumps(config)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._queue: queue.Queue[TraceRecord | None] = queue.Queue()
        self._lock = threading.Lock()
        self._ended = False
        self._feeder = threading.Thread(target=self._feed, name="workbench-trace-feeder", daemon=True)
        self._feeder.start()

    def submit(self, record: TraceRecord) -> None:
        for span in record.spans:  # what only the recorder needed (e.g. the LM's usage counter)
            for key in [k for k in span.attributes if k.startswith("_")]:
                del span.attributes[key]
        record._stack, record._by_call = [], {}
        with self._lock:  # examples finish in several threads
            self.stats.submitted += 1
            self.stats.truncated += record.truncated
        self._queue.put(record)

    def _feed(self) -> None:
        pipe = self._proc.stdin
        try:
            while (record := self._queue.get()) is not None:
                data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
                pipe.write(_HEADER.pack(len(data)) + data)
                pipe.flush()
        except (BrokenPipeError, OSError):  # the writer died: what it did not get is counted lost at close
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def end_input(self) -> None:
        """No more traces will come: a writer holding them starts writing now, while this process
        goes on with the run's other logging. Returns at once; `close()` waits."""
        if not self._ended:
            self._ended = True
            self._queue.put(None)

    def close(self, timeout: float = 120.0) -> WriteStats:
        """Let the writer finish (at most `timeout` seconds); what it did not write is lost."""
        deadline = time.monotonic() + timeout
        self.end_input()
        self._feeder.join(timeout)
        self._proc.stdin = None  # the feeder closed it; communicate() must not flush it again
        try:
            out, _ = self._proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, _ = self._proc.communicate()
            self.stats.last_error = f"writing traces took longer than {timeout:g} s"
        lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith(STATS_PREFIX)]
        if lines:
            reported = json.loads(lines[-1].removeprefix(STATS_PREFIX))
            self.stats.written, self.stats.seconds = reported["written"], reported["seconds"]
            self.stats.last_error = self.stats.last_error or reported["last_error"]
        elif not self.stats.last_error:
            self._errors.seek(0)
            tail = [line for line in self._errors.read().decode(errors="replace").splitlines() if line.strip()]
            self.stats.last_error = (f"the trace writer exited with code {self._proc.returncode}"
                                     + (f": {tail[-1][:300]}" if tail else ""))
        self._errors.close()
        self.stats.lost = self.stats.submitted - self.stats.written
        return self.stats


def _read_exact(stream, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main(argv: list[str]) -> int:
    from workbench.traces.writer import StoreWriter

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # MLflow prices LM spans: never fetch tables
    config = json.loads(argv[0])
    if not config["hold"]:
        try:
            os.nice(19)  # the evaluation comes first; traces are written in its idle moments
        except OSError:
            pass
    # a held writer only reads its pipe until the evaluation ends (MLflow is imported at its first write),
    # then writes at normal priority: at nice 19 beside other busy processes (a second run, a test
    # suite) it got no CPU for over a minute and the run's close timeout lost every trace
    writer = StoreWriter(config["uri"], config["experiment_id"], config["run_id"], model_id=config["model_id"],
                         batch_size=config["batch_size"], interval=config["interval"], hold=config["hold"],
                         grace=config["grace"])
    stdin = sys.stdin.buffer
    while (header := _read_exact(stdin, _HEADER.size)) is not None:
        data = _read_exact(stdin, _HEADER.unpack(header)[0])
        if data is None:
            break
        writer.submit(pickle.loads(data))  # noqa: S301  our own parent's records, over our own pipe
    stats = writer.close(timeout=24 * 3600)  # the parent bounds the wait (and kills this process)
    print(STATS_PREFIX + json.dumps({"written": stats.written, "seconds": round(stats.seconds, 3),
                                     "last_error": stats.last_error}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
