"""Running a tool call: in-process for trusted tools, in a guarded subprocess otherwise.

Whatever happens, the caller gets an `Observation` — a value, or an error string the
program can show the LM — never an exception: a tool that raises, hangs past its
timeout, returns something that is not JSON, opens a socket, starts a process, or writes
outside its temp dir is reported, counted and survived. The subprocess (`worker.py`) gets
the call as JSON on stdin, runs in a fresh temp dir with CPU and memory limits, and
installs a Python audit hook that refuses network, process creation, native-library
loading and writes outside that dir before any tool code runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from workbench.registry import tools

MAX_OUTPUT_BYTES = 1_000_000


@dataclass(frozen=True)
class Observation:
    ok: bool
    value: Any = None
    error: str = ""

    def text(self, limit: int = 400) -> str:
        """What the LM is shown."""
        return (json.dumps(self.value, ensure_ascii=False) if self.ok else f"error: {self.error}")[:limit]


def _in_process(fn, arguments: dict) -> Observation:
    try:
        value = fn(**arguments)
    except Exception as exc:  # a tool error is an observation
        return Observation(False, error=f"{type(exc).__name__}: {exc}")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return Observation(False, error=f"result of type {type(value).__name__} is not JSON-serialisable")
    return Observation(True, value)


def call_tool(name: str, arguments: dict, *, timeout: float | None = None) -> Observation:
    """Run registered tool `name` with `arguments` (never raises)."""
    try:
        entry = tools.get(name)
    except Exception as exc:
        return Observation(False, error=str(exc))
    if not isinstance(arguments, dict):
        return Observation(False, error="arguments must be a JSON object")
    if entry.trusted:
        return _in_process(entry.fn, arguments)
    return run_sandboxed(name, arguments, timeout=timeout or entry.timeout, module=entry.fn.__module__)


def run_sandboxed(name: str, arguments: dict, *, timeout: float, module: str = "") -> Observation:
    """Run the tool in a fresh worker process; `module` is imported there first (it registers the tool)."""
    try:
        payload = {"tool": name, "module": module, "arguments": arguments, "timeout": timeout}
        json.dumps(payload)
    except (TypeError, ValueError):
        return Observation(False, error="arguments are not JSON")
    with tempfile.TemporaryDirectory(prefix="workbench-tool-") as workdir:
        request = json.dumps({**payload, "dir": workdir})
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
        try:
            done = subprocess.run([sys.executable, "-m", "workbench.tools.worker"], input=request, capture_output=True,
                                  text=True, timeout=timeout + 3.0, cwd=workdir, env=env)  # + interpreter start-up
        except subprocess.TimeoutExpired:
            return Observation(False, error=f"timeout: {name} ran longer than {timeout:g} s and was stopped")
    if len(done.stdout) > MAX_OUTPUT_BYTES:
        return Observation(False, error=f"{name} returned more than {MAX_OUTPUT_BYTES} bytes")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Observation(False, error=f"{name} crashed (exit {done.returncode}): {tail[:300]}")
    reply = json.loads(lines[-1])
    return Observation(True, reply["value"]) if reply["ok"] else Observation(False, error=reply["error"])
