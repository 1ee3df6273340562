"""Misbehaving tools for the sandbox tests (registered when this module is imported)."""

from __future__ import annotations

import socket
import time

from workbench.tools.functions import tool


@tool("test_sleeps_forever", timeout=1.0)
def sleeps_forever(seconds: float = 1e9) -> str:
    """Never returns in time."""
    time.sleep(seconds)
    return "woke up"


@tool("test_opens_socket")
def opens_socket(host: str = "127.0.0.1", port: int = 5432) -> str:
    """Tries to reach the network."""
    with socket.create_connection((host, port), timeout=2):
        return "connected"


@tool("test_writes_outside")
def writes_outside(path: str) -> str:
    """Tries to write a file outside its own directory."""
    with open(path, "w") as handle:
        handle.write("escaped")
    return "written"


@tool("test_writes_inside")
def writes_inside(name: str = "scratch.txt") -> str:
    """Writes in its working directory (allowed) and reads it back."""
    with open(name, "w") as handle:
        handle.write("ok")
    with open(name) as handle:
        return handle.read()


@tool("test_raises")
def raises(message: str = "boom") -> str:
    """Raises."""
    raise RuntimeError(message)


@tool("test_returns_junk")
def returns_junk() -> str:
    """Returns something that is not JSON."""
    return {1, 2, 3}  # a set


@tool("test_spawns_process")
def spawns_process() -> str:
    """Tries to start a process."""
    import subprocess

    return subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout
