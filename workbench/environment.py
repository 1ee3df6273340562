"""Which software produced a run: the lock file and the versions that matter.

`requirements.lock` pins every dependency (with hashes) and is made from `pyproject.toml` by
`make lock` (`uv pip compile`). Its first line records a digest of the dependency sections of
`pyproject.toml`, so `stale_reasons()` can tell when the lock no longer matches them: a
changed dependency section, or a direct requirement the lock does not pin or pins outside its
range. Every run is tagged with the lock's sha256 and the versions of Python, DSPy and MLflow
(`run_tags()`); `workbench compare` says when two runs differ in them.

    python -m workbench.environment check     # exit 1 with the reasons when the lock is stale
    python -m workbench.environment header    # the digest line `make lock` puts on top
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import sys
import tomllib
from pathlib import Path

from workbench.paths import project_root

LOCK_FILE = "requirements.lock"
DIGEST_PREFIX = "# pyproject-dependencies-sha256: "
LOCK_TAG = "workbench.lock_sha256"
VERSIONS_TAG = "workbench.versions"
# Installed beside the lock, not from it: built from source with the machine's CPU flags (Makefile).
UNLOCKED = {"llama-cpp-python"}
EXTRAS = ("dev",)


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def dependency_sections(pyproject: Path) -> dict:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    return {"requires-python": project.get("requires-python", ""),
            "dependencies": project.get("dependencies", []),
            "optional-dependencies": {k: project.get("optional-dependencies", {}).get(k, []) for k in EXTRAS}}


def dependencies_digest(pyproject: Path) -> str:
    text = json.dumps(dependency_sections(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def locked_versions(lock: Path) -> dict[str, str]:
    """{normalized name: version} of the `name==version` lines of a lock file."""
    out = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        head = line.split(";")[0].split("\\")[0].strip()
        if head and not head.startswith(("#", "-")) and "==" in head:
            name, _, version = head.partition("==")
            out[_norm(name.split("[")[0].strip())] = version.strip()
    return out


def stale_reasons(pyproject: Path, lock: Path) -> list[str]:
    """Why `lock` does not match `pyproject` (empty: it matches)."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    if not lock.is_file():
        return [f"{lock.name} is missing (run `make lock`)"]
    reasons = []
    first = lock.read_text(encoding="utf-8").splitlines()[:1]
    recorded = first[0].removeprefix(DIGEST_PREFIX).strip() if first and first[0].startswith(DIGEST_PREFIX) else ""
    if recorded != dependencies_digest(pyproject):
        reasons.append(f"the dependency sections of {pyproject.name} changed since {lock.name} was made")
    pins = locked_versions(lock)
    sections = dependency_sections(pyproject)
    for text in [*sections["dependencies"], *(r for k in EXTRAS for r in sections["optional-dependencies"][k])]:
        req = Requirement(text)
        name = _norm(req.name)
        if name in UNLOCKED:
            continue
        if name not in pins:
            reasons.append(f"{req.name} is required by {pyproject.name} but not pinned in {lock.name}")
        elif not req.specifier.contains(Version(pins[name]), prereleases=True):
            reasons.append(f"{lock.name} pins {req.name}=={pins[name]}, outside {req.name}{req.specifier}")
    return reasons


@functools.lru_cache(maxsize=None)
def lock_sha256(root: Path | None = None) -> str:
    from workbench.export.bundle import sha256_file

    path = (root or project_root()) / LOCK_FILE
    return sha256_file(path) if path.is_file() else "none"


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """{"python": ..., package: installed version or "unknown"}."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out


@functools.lru_cache(maxsize=None)
def versions_line() -> str:
    versions = package_versions(("dspy", "mlflow", "litellm", "llama-cpp-python", "torch"))
    return " ".join(f"{k}={v}" for k, v in versions.items() if v != "unknown")


def run_tags() -> dict[str, str]:
    return {LOCK_TAG: lock_sha256(), VERSIONS_TAG: versions_line()}


def difference(tags_a: dict[str, str], tags_b: dict[str, str]) -> str:
    """One line when two runs were made with different locks or versions ('' when not, or unknown)."""
    lock_a, lock_b = tags_a.get(LOCK_TAG), tags_b.get(LOCK_TAG)
    va, vb = (dict(p.split("=", 1) for p in t.get(VERSIONS_TAG, "").split() if "=" in p) for t in (tags_a, tags_b))
    changed = [f"{k} {va.get(k, '?')} → {vb.get(k, '?')}" for k in sorted(set(va) | set(vb))
               if va and vb and va.get(k) != vb.get(k)]
    if lock_a and lock_b and lock_a != lock_b:
        return (f"different locks: {lock_a[:12]} → {lock_b[:12]}"
                + (f" ({', '.join(changed)})" if changed else " (same Python, DSPy and MLflow versions)"))
    return f"same lock, different versions installed: {', '.join(changed)}" if changed else ""


def main(argv: list[str]) -> int:
    root = project_root()
    if argv[:1] == ["header"]:
        print(DIGEST_PREFIX + dependencies_digest(root / "pyproject.toml"))
        return 0
    if argv[:1] == ["check"]:
        reasons = stale_reasons(root / "pyproject.toml", root / LOCK_FILE)
        for reason in reasons:
            print(f"stale lock: {reason}; run `make lock`", file=sys.stderr)
        return 1 if reasons else 0
    print("usage: python -m workbench.environment {check|header}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
