"""`workbench.load(DIR)`: a verified bundle back as a callable program.

The program class is imported from the installed `programs` package (never from the
bundle), rebuilt from its export config and given its DSPy JSON state; the LM is built
from the bundle's settings. Inputs are validated against the program's `forward`
signature, so a service can reject bad requests before they reach the LM.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy
from pydantic import BaseModel, ConfigDict, StringConstraints, create_model

from workbench.export.bundle import BundleError, read_json, verify
from workbench.program_contract import has_bundle_files, is_exportable, warms_up

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 20_000  # per string input; a routing message or question is far shorter


def import_program_class(reference: str, *, file: str) -> type[dspy.Module]:
    """The class named `programs.<module>.<Class>`; anything outside `programs` is refused."""
    module_name, _, class_name = reference.rpartition(".")
    if not module_name.startswith("programs.") or not class_name.isidentifier():
        raise BundleError(f"program class {reference!r} is not in the workbench's programs package", file=file,
                          field="class")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise BundleError(f"program class {reference!r} does not exist in the installed dspy-workbench", file=file,
                          field="class") from None
    if not (isinstance(cls, type) and issubclass(cls, dspy.Module) and is_exportable(cls)):
        raise BundleError(f"{reference!r} is not an exportable DSPy program", file=file, field="class")
    return cls


def source_digest(cls: type) -> str:
    return hashlib.sha256(Path(inspect.getsourcefile(cls)).read_bytes()).hexdigest()


def input_model(cls: type[dspy.Module], names: list[str]) -> type[BaseModel]:
    """A pydantic model of the program's inputs (types from `forward`); unknown keys are refused."""
    hints = typing.get_type_hints(cls.forward)
    fields: dict[str, Any] = {}
    for name in names:
        annotation = hints.get(name, str)
        if annotation is str:
            annotation = typing.Annotated[str, StringConstraints(min_length=1, max_length=MAX_INPUT_CHARS)]
        fields[name] = (annotation, ...)
    return create_model(f"{cls.__name__}Inputs", __config__=ConfigDict(extra="forbid", strict=True), **fields)


def json_safe(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


@dataclass
class LoadedProgram:
    """A bundle's program with its LM: call it like the program, or `predict(dict)` for JSON."""

    program: dspy.Module
    lm: dspy.LM
    adapter: dspy.Adapter
    manifest: dict[str, Any]
    report: dict[str, Any]
    inputs: list[str]
    outputs: list[str]
    inputs_model: type[BaseModel]
    path: Path
    warnings: list[str] = field(default_factory=list)

    def __call__(self, **inputs: Any) -> dspy.Prediction:
        with dspy.context(lm=self.lm, adapter=self.adapter):
            return self.program(**inputs)

    def validate(self, payload: Any) -> dict[str, Any]:
        """The inputs in `payload` (a dict), checked; raises pydantic.ValidationError."""
        return self.inputs_model.model_validate(payload).model_dump()

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Validated inputs -> the prediction's output fields as JSON-safe values."""
        prediction = self(**self.validate(payload))
        return {name: json_safe(prediction.get(name)) for name in self.outputs if name in prediction}

    def metadata(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "report": self.report, "inputs": self.inputs, "outputs": self.outputs,
                "lm": {"model": self.lm.model, "backend": self.lm.engine.describe()}, "warnings": self.warnings}

    def prompts(self) -> str:
        """The rendered prompts (instructions, fields, demos) exported with the program."""
        return (self.path / "prompts.md").read_text(encoding="utf-8")


def load(folder: str | Path, *, lm_overrides: dict[str, Any] | None = None, warm_up: bool = True) -> LoadedProgram:
    """Verify a bundle and rebuild its program and LM. `lm_overrides` change LM settings
    (e.g. `{"cache": False}` or another `api_base`) without touching the bundle."""
    from workbench.lm import build_lm
    from workbench.lm.adapters import build_adapter
    from workbench.spec import LMSpec

    folder = Path(folder)
    manifest = verify(folder)
    config_file = str(folder / "program_config.json")
    config = read_json(folder, "program_config.json")
    cls = import_program_class(str(config.get("class", "")), file=config_file)
    warnings = []
    if config.get("source_sha256") and config["source_sha256"] != source_digest(cls):
        warnings.append(f"the installed source of {config['class']} differs from the one exported "
                        "(dspy-workbench changed since); predictions may differ from the report")
        log.warning(warnings[-1])
    if "tools.json" in manifest.get("files", {}):
        from workbench.export.tool_records import check_tools

        for warning in check_tools(folder):
            warnings.append(warning)
            log.warning(warning)
    try:
        if has_bundle_files(cls):  # rebuilt from the bundle's own files (corpus, indexes, tool records)
            program = cls.from_export_config(config.get("config", {}), folder)
        else:
            program = cls.from_export_config(config.get("config", {}))
        program.load_state(read_json(folder, "program.json"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"state does not fit {config['class']}: {type(exc).__name__}: {exc}",
                          file=str(folder / "program.json")) from None
    lm_settings = read_json(folder, "lm.json")
    if lm_settings.get("lora"):  # inside the bundle, checksummed by the manifest; its sha256 is checked again on load
        if lm_settings["lora"] not in manifest["files"]:
            raise BundleError(f"lm.json names the LoRA adapter {lm_settings['lora']!r}, which the manifest does not "
                              "list", file=str(folder / "lm.json"))
        lm_settings["lora"] = str(folder / lm_settings["lora"])
    try:
        lm_spec = LMSpec.model_validate({**lm_settings, **(lm_overrides or {})})
    except ValueError as exc:
        raise BundleError(f"LM settings are invalid: {exc}".splitlines()[0], file=str(folder / "lm.json")) from None
    lm = build_lm(lm_spec, source=str(folder / "lm.json"))
    if warm_up and warms_up(program):
        program.warm_up()
    inputs = list(config.get("inputs", []))
    return LoadedProgram(program=program, lm=lm, adapter=build_adapter(lm_spec.adapter), manifest=manifest,
                         report=read_json(folder, "report.json"), inputs=inputs,
                         outputs=list(config.get("outputs", [])), inputs_model=input_model(cls, inputs),
                         path=folder, warnings=warnings)
