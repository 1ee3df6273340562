"""Datasets registered by a folder, not by Python: `datasets/<name>/dataset.yaml`.

    # datasets/support_tickets/dataset.yaml
    description: Support tickets routed to one of 8 queues.
    license: CC BY 4.0          # or a LICENSE file beside it
    params:                     # the params of `dataset.name: file`; paths relative to this folder
      path: tickets.csv
      options: {sep: ";"}
      input: message
      label: queue

registers `support_tickets` for every spec. A spec's own `dataset.params` are laid over
the folder's (e.g. another `split`). A folder whose name is taken by a built-in dataset
is an error naming its dataset.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from workbench.data import TaskData
from workbench.data.file_params import resolve_paths
from workbench.errors import UserError
from workbench.paths import datasets_dir
from workbench.registry import datasets

MANIFEST = "dataset.yaml"


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"not readable YAML: {str(exc).splitlines()[0]}", file=str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise UserError("needs a `params:` mapping (the params of a file dataset)", file=str(path), field="params")
    unknown = set(data) - {"name", "description", "license", "card", "params"}
    if unknown:
        raise UserError("unknown key (known: name, description, license, card, params)", file=str(path),
                        field=sorted(unknown)[0])
    return data


def _merged(own: dict[str, Any], overrides: dict[str, Any], base: Path) -> dict[str, Any]:
    return {**own, **resolve_paths(overrides, base)}


def folder_check(manifest: Path):
    """The spec-time check of a folder dataset's params (light: reads only the manifest)."""
    from workbench.data.file_params import check_file_params

    own = resolve_paths(read_manifest(manifest)["params"], manifest.parent)

    def check_params(params: dict[str, Any], *, base: Path, spec_task: str | None, file: str) -> dict[str, Any]:
        try:
            checked = check_file_params(_merged(own, params, base), base=manifest.parent, spec_task=spec_task,
                                        file=str(manifest))
        except UserError as exc:
            if exc.field and exc.field.startswith("dataset.params."):
                key = exc.field.removeprefix("dataset.params.").split(".")[0]
                if key not in params:  # the folder's own value is at fault
                    exc.field = "params." + exc.field.removeprefix("dataset.params.")
                    exc.file = str(manifest) if exc.file in (None, file) else exc.file
            raise
        return {k: v for k, v in checked.items() if k in params or k == "task"}

    return check_params


def folder_loader(manifest: Path, data: dict[str, Any]):
    """A registered loader for one dataset folder."""
    name = str(data.get("name") or manifest.parent.name)
    own = resolve_paths(data["params"], manifest.parent)

    def loader(**overrides: Any) -> TaskData:
        from workbench.data.files import load_file_dataset

        try:
            return load_file_dataset(_merged(own, overrides, Path.cwd()), name=name, file=str(manifest))
        except UserError as exc:
            exc.file = exc.file or str(manifest)
            raise

    loader.__doc__ = str(data.get("description") or f"files of datasets/{manifest.parent.name}/").strip()
    loader.check_params = folder_check(manifest)
    loader.folder = manifest.parent
    loader.license = data.get("license") or _first_line(manifest.parent / "LICENSE")
    return name, loader


def _first_line(path: Path) -> str:
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    return text.splitlines()[0][:80] if text else ""


@datasets.after_load
def register_folders() -> None:
    root = datasets_dir()
    if not root.is_dir():
        return
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        name, loader = folder_loader(manifest, read_manifest(manifest))
        try:
            datasets.register(name)(loader)
        except ValueError:
            raise UserError(f"the dataset name {name!r} is taken (a built-in dataset or another folder); rename the "
                            "folder or set `name:`", file=str(manifest)) from None
