"""Helpers for benchmarks that start a local HTTP server in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(proc: subprocess.Popen, url: str, *, what: str, seconds: float = 120) -> subprocess.Popen:
    """Poll `url` until it answers; exit the benchmark with a clear line if the server dies or stays silent."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{what} did not answer {url} within {seconds:.0f} s")
