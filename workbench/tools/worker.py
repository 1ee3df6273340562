"""Subprocess side of the tool sandbox: read one call as JSON on stdin, run it under
guards, print one JSON reply line (`{"ok", "value"}` or `{"ok": false, "error"}`).

Guards, installed after the tool modules are imported and before the tool runs: an audit
hook (it cannot be removed from Python code) refusing sockets, subprocesses, exec/fork,
ctypes, and writes, renames or deletions outside the call's temp dir; RLIMIT_CPU and
RLIMIT_AS; an alarm at the tool's timeout. It is a guard against mistakes and casual
misuse by tool code, not a security boundary against native code.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import resource
import signal
import sys

MEMORY_BYTES = 2 * 1024 ** 3
_BLOCKED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                     "os.system", "pty.", "ctypes.", "webbrowser.", "urllib.Request", "http.client.")
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.link",
                "os.symlink", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copytree"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _inside(path, root: str) -> bool:
    if isinstance(path, int):
        return True  # an already-open descriptor
    try:
        resolved = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return resolved == root or resolved.startswith(root + os.sep)


def install_guards(root: str) -> None:
    root = os.path.realpath(root)

    def hook(event: str, args: tuple) -> None:
        if event.startswith(_BLOCKED_PREFIXES):
            raise PermissionError(f"sandbox: {event} is not allowed for tools")
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2] or 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & _WRITE_FLAGS)
            if writing and not _inside(path, root):
                raise PermissionError(f"sandbox: writing {path!r} outside the tool's directory is not allowed")
        elif event in _PATH_EVENTS:
            for path in args[:2]:
                if isinstance(path, (str, bytes, os.PathLike)) and not _inside(path, root):
                    raise PermissionError(f"sandbox: {event} on {path!r} outside the tool's directory is not allowed")

    sys.addaudithook(hook)


def _timeout(signum, frame):
    raise TimeoutError("the tool ran past its timeout")


def main() -> None:
    request = json.loads(sys.stdin.read())
    reply_stream = os.fdopen(os.dup(1), "w")
    sys.stdout = sys.stderr  # tool prints must not mix with the reply
    try:
        from workbench.registry import tools

        if request.get("module") and request["module"] != "__main__":
            importlib.import_module(request["module"])  # registers the tool if it lives outside programs/tools
        entry = tools.get(request["tool"])
    except Exception as exc:
        reply = {"ok": False, "error": f"cannot load tool {request['tool']!r}: {exc}"}
    else:
        os.chdir(request["dir"])
        seconds = max(math.ceil(float(request.get("timeout", entry.timeout))), 1)
        resource.setrlimit(resource.RLIMIT_CPU, (seconds + 1, seconds + 2))
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
        signal.signal(signal.SIGALRM, _timeout)
        install_guards(request["dir"])
        signal.alarm(seconds)
        try:
            value = entry.fn(**request["arguments"])
            signal.alarm(0)
            json.dumps(value)
            reply = {"ok": True, "value": value}
        except TimeoutError:
            reply = {"ok": False, "error": f"timeout: {request['tool']} ran longer than its limit and was stopped"}
        except (TypeError, ValueError) as exc:
            is_json = "JSON serializable" in str(exc) or "Circular reference" in str(exc)
            reply = {"ok": False, "error": "result is not JSON-serialisable" if is_json else f"{type(exc).__name__}: {exc}"}
        except BaseException as exc:  # MemoryError, PermissionError from the guards, anything the tool raises
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    reply_stream.write(json.dumps(reply, default=str) + "\n")
    reply_stream.flush()


if __name__ == "__main__":
    main()
