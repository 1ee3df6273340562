"""What the registries hold, remembered on disk, so a spec is checked without importing DSPy.

Registering an entry means importing its module, and the modules import DSPy, MLflow or
Hugging Face `datasets` (seconds on 2 cores). A spec check needs only names and parameter
names, so after the first full load the registries write them to
`.cache/registry-index.json`, keyed by the size and modification time of every source file
the registries import (and of the dataset folders' `dataset.yaml`) plus the DSPy version.
A later check with an unchanged key reads the JSON (milliseconds); any change to a source
file, a new dataset folder or a DSPy upgrade makes it stale and the next check loads for
real and rewrites it. Specs with `imports:` always load for real (their code registers too).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
from pathlib import Path
from typing import Any

FORMAT = 3  # 2: parameter defaults; 3: "call:" checks of programs


def _package_folder(package: str) -> Path | None:
    """A package's folder without importing it (a dotted name: its top level's folder + the rest)."""
    top, *rest = package.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*rest)


def source_key(packages: list[str]) -> str:
    """Digest of the sources that fill the registries (stat only: no file is read)."""
    from workbench.paths import datasets_dir

    parts: list[str] = [f"format {FORMAT}"]
    try:
        from importlib.metadata import version

        parts.append(f"dspy {version('dspy')}")
    except Exception:  # noqa: BLE001  not installed as a distribution: the sources still count
        parts.append("dspy ?")
    folders = [f for f in (_package_folder(p) for p in sorted(set(packages))) if f is not None]
    for folder in folders:
        for path in sorted(folder.glob("*.py")):
            stat = path.stat()
            parts.append(f"{path} {stat.st_size} {stat.st_mtime_ns}")
    root = datasets_dir()
    if root.is_dir():
        for path in sorted(root.glob("*/dataset.yaml")):
            stat = path.stat()
            parts.append(f"{path} {stat.st_size} {stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def index_path() -> Path:
    from workbench.paths import cache_dir

    return cache_dir() / "registry-index.json"


def describe(obj: Any) -> dict[str, Any]:
    """Names a spec may use with this entry: its keyword-only parameters (or the
    `accepted_params` it declares) with their plain defaults, whether it takes any keyword,
    and its spec-time check."""
    info: dict[str, Any] = {"params": None, "any": False, "check": None, "defaults": {}}
    accepted = getattr(obj, "accepted_params", None)
    if accepted:
        info["params"] = sorted(accepted)
    else:
        try:
            parameters = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            parameters = []
        info["params"] = sorted(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in ("data", "ctx"))
        info["any"] = any(p.kind is p.VAR_KEYWORD for p in parameters)
        info["defaults"] = {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY
                            and isinstance(p.default, (bool, int, float, str, type(None)))}
    if getattr(obj, "folder", None) is not None and hasattr(obj, "check_params"):
        info["check"] = f"folder:{obj.folder}"
    elif hasattr(obj, "check_params"):
        from workbench.data.file_params import check_file_params

        # the file dataset's check is light to import; a check in a module of its own ("call:") is imported
        # alone (it must not import DSPy); any other is called on the entry itself, which imports its module
        check, module = obj.check_params, getattr(obj.check_params, "__module__", None)
        own = module is None or module == getattr(obj, "__module__", None)
        info["check"] = ("file" if check is check_file_params else "loader" if own
                         else f"call:{module}:{check.__qualname__}")
    return info


def check_function(check: str):
    """The function a `call:module:name` check names (its module imported, nothing else)."""
    import importlib

    module, name = check.removeprefix("call:").split(":", 1)
    return getattr(importlib.import_module(module), name)


def read(key: str) -> dict[str, dict[str, dict[str, Any]]] | None:
    """The index if it was written for these sources, else None."""
    if os.environ.get("WORKBENCH_NO_REGISTRY_INDEX"):
        return None
    try:
        data = json.loads(index_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("entries") if isinstance(data, dict) and data.get("key") == key else None


def write(key: str, entries: dict[str, dict[str, dict[str, Any]]]) -> None:
    path = index_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "entries": entries}, sort_keys=True), encoding="utf-8")
        tmp.replace(path)  # atomic: concurrent writers never leave half a file
    except OSError:  # a read-only checkout still works, just slower
        pass
