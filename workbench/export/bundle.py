"""The bundle format: a folder of JSON and Markdown files plus a manifest of their SHA-256.

A bundle holds everything a service needs to rebuild a compiled program without the
workbench's data, specs or MLflow store: the DSPy JSON state, the program class and the
arguments that rebuild it, the signatures, the LM settings (an API key only by the name of
its environment variable), the rendered prompts, the spec, and the evaluation report.
Nothing in it is ever unpickled; `verify()` refuses a bundle whose files changed after
export, that comes from a newer format, or that needs another DSPy minor version.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from workbench.errors import UserError

FORMAT = "dspy-workbench-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# The files every bundle has; prompt_example.md and README.md are optional extras.
REQUIRED = ("program.json", "program_config.json", "signatures.json", "lm.json", "prompts.md", "spec.json",
            "report.json")

LORA_FILE = "lora.gguf"  # the fine-tuned LoRA adapter, when the program has one (lm.json names it)


class BundleError(UserError):
    """A bundle that cannot be trusted or understood (tampered, newer format, other DSPy)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    from workbench.environment import package_versions

    return package_versions(("dspy", "mlflow", "dspy-workbench"))


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def read_json(folder: Path, name: str) -> Any:
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError("file is missing from the bundle", file=str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"not valid JSON: {exc}", file=str(path)) from None


def write_manifest(folder: Path, *, run_id: str, experiment: str, program_class: str,
                   dataset: dict[str, str]) -> dict[str, Any]:
    """Checksum every file in `folder` (except the manifest) and write manifest.json."""
    files = {p.relative_to(folder).as_posix(): sha256_file(p)
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "run_id": run_id, "experiment": experiment, "program_class": program_class,
                "dataset": dataset, "versions": versions(), "files": files}
    write_json(folder / MANIFEST, manifest)
    return manifest


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def verify(folder: str | Path) -> dict[str, Any]:
    """The bundle's manifest, after checking format, DSPy version and every file's SHA-256."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError("no such bundle folder", file=str(folder))
    if not (folder / MANIFEST).is_file():
        raise BundleError("not a workbench bundle (no manifest.json)", file=str(folder))
    manifest = read_json(folder, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"not a workbench bundle manifest (format is not {FORMAT!r})", file=str(folder / MANIFEST))
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(f"bundle format version {version} is newer than this workbench reads ({FORMAT_VERSION}); "
                          "upgrade dspy-workbench", file=str(folder / MANIFEST), field="format_version")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(name in files for name in REQUIRED):
        missing = [name for name in REQUIRED if not isinstance(files, dict) or name not in files]
        raise BundleError(f"manifest lists no checksum for {', '.join(missing)}", file=str(folder / MANIFEST),
                          field="files")
    for name, expected in files.items():
        path = (folder / name).resolve()
        if folder.resolve() not in path.parents:
            raise BundleError(f"manifest names a file outside the bundle: {name!r}", file=str(folder / MANIFEST))
        if not path.is_file():
            raise BundleError("file listed in the manifest is missing", file=str(path))
        if sha256_file(path) != expected:
            raise BundleError("SHA-256 does not match the manifest: the file changed after export; re-export the "
                              "run instead of editing a bundle", file=str(path))
    made_with = str(manifest.get("versions", {}).get("dspy", "unknown"))
    installed = versions()["dspy"]
    if _minor(made_with) != _minor(installed):
        raise BundleError(f"bundle was exported with dspy {made_with}; this environment has dspy {installed} "
                          f"(install dspy=={'.'.join(_minor(made_with))}.* to load it)", file=str(folder / MANIFEST),
                          field="versions.dspy")
    return manifest
