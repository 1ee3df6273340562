"""A tool agent's tools, recorded in its bundle (`tools.json`) and checked when it is loaded.

Tools are code, so a bundle names them rather than carrying them: the registered name, the
module that registers it, the SHA-256 of that module's source, and its sandbox policy
(trusted in-process, or untrusted in the guarded subprocess, with its timeout). Loading
refuses a tool that is not registered in the installed workbench (its module is imported
first) and warns when its source or policy changed since export; untrusted tools stay
sandboxed when served, because `call_tool` reads the policy from the registry.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path
from typing import Any

from workbench.export.bundle import BundleError, read_json, write_json

TOOLS_FILE = "tools.json"


def _record(name: str) -> dict[str, Any]:
    from workbench.registry import tools

    entry = tools.get(name)
    module = entry.fn.__module__
    source = Path(inspect.getsourcefile(entry.fn)).read_bytes()
    return {"name": name, "module": module, "source_sha256": hashlib.sha256(source).hexdigest(),
            "trusted": bool(entry.trusted), "timeout_seconds": float(entry.timeout),
            "sandbox": "in-process" if entry.trusted else "subprocess (audit hook: no network, processes or writes "
                                                           "outside its temp dir; CPU and memory limits)"}


def write_tools(folder: Path, names: list[str]) -> str:
    write_json(folder / TOOLS_FILE, {"tools": [_record(n) for n in names]})
    return TOOLS_FILE


def check_tools(folder: Path) -> list[str]:
    """Refuse a recorded tool the installed workbench lacks; a warning per changed one."""
    from workbench.registry import tools

    file = str(folder / TOOLS_FILE)
    recorded = read_json(folder, TOOLS_FILE).get("tools", [])
    warnings = []
    for item in recorded:
        name, module = str(item.get("name", "")), str(item.get("module", ""))
        try:
            if module:
                importlib.import_module(module)
            tools.get(name)
        except Exception:  # noqa: BLE001 - ImportError, or the registry's unknown-name error
            raise BundleError(f"tool {name!r} (module {module or '?'}) is not installed here; the bundle needs it",
                              file=file, field="tools") from None
        now = _record(name)
        if now["source_sha256"] != item.get("source_sha256"):
            warnings.append(f"tool {name!r}: the source of {module} differs from the one exported; its results may "
                            "differ from the report")
        if (now["trusted"], now["timeout_seconds"]) != (item.get("trusted"), item.get("timeout_seconds")):
            warnings.append(f"tool {name!r}: its sandbox policy changed since export (trusted {item.get('trusted')} -> "
                            f"{now['trusted']}, timeout {item.get('timeout_seconds')} -> {now['timeout_seconds']} s)")
    return warnings
