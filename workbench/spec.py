"""Experiment specs: YAML files validated by Pydantic.

`load_spec(path, overrides)` reads a spec, applies `--set key.path=value` overrides, and
returns a validated `Spec`. Every problem a user can cause becomes one `UserError` line
naming the file and the dotted field; nothing is started before a spec validates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench import registry
from workbench.errors import UserError
from workbench.program_params import check_program_params
from workbench.tracking import default_uri
from workbench.search import SearchSpec, apply, set_path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetSpec(_Strict):
    """Which registered dataset, and how many items of each split to sample (None = all)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)  # loader arguments, e.g. qa_corpus's corpus path
    train: int | None = Field(default=None, ge=1)
    dev: int | None = Field(default=200, ge=1)
    test: int | None = Field(default=None, ge=1)
    seed: int = 0
    # cross-fitting (workbench/data/folds.py): test on the i-th of k seeded parts of the test split,
    # train on the rest too; `workbench run SPEC --folds k` runs every i under one parent run
    fold: str | None = None

    @field_validator("fold")
    @classmethod
    def _fold(cls, value):
        from workbench.data.folds import parse_fold

        try:
            parse_fold(value)
        except UserError as exc:
            raise ValueError(exc.message) from None
        return value


class ProgramSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class MetricSpec(_Strict):
    """The per-example metric that scores and drives optimizers, plus corpus summaries."""

    name: str = "accuracy"
    summaries: list[str] = Field(default_factory=list)


class LMSpec(_Strict):
    """An LM: a registered backend (`workbench list lm_backends`): the embedded GGUF model
    (default), any OpenAI-compatible endpoint, the deterministic `recorded` backend of the
    fast tests (`model`: synthetic, or a recordings .jsonl), or one of the user's own."""

    backend: str = "embedded"
    model: str = "smollm2-135m-instruct"
    api_base: str | None = None
    api_key_env: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, ge=1)
    n_ctx: int = Field(default=4096, ge=256)
    timeout_s: float = Field(default=120.0, gt=0)
    # Transient failures (429, 5xx, 408/409, timeouts, dropped connections) are retried with
    # exponential backoff and jitter, honouring Retry-After: at most `retries` extra attempts
    # and `retry_max_seconds` of waiting per call.
    retries: int = Field(default=5, ge=0, le=100)
    retry_max_seconds: float = Field(default=60.0, ge=0)
    # Client-side limits, shared by every thread of the process (null = none).
    max_requests_per_minute: float | None = Field(default=None, gt=0)
    max_tokens_per_minute: float | None = Field(default=None, gt=0)
    # One cheap call (the endpoint's model list) before anything runs: a dead host, a
    # rejected key or an unknown model is an input error, not a run full of failures.
    preflight: bool = True
    cache: bool = True
    # What the endpoint understands (a capability declaration; ignored by the embedded LM):
    # openai_json_schema (OpenAI, vLLM, llama.cpp server), json_object_schema (llama-cpp-python
    # server), json_object (any JSON, no schema), none (plain text).
    response_format: Literal["openai_json_schema", "json_object_schema", "json_object", "none"] = "openai_json_schema"
    adapter: Literal["compact_json", "json", "chat"] = "compact_json"
    # A LoRA adapter in GGUF form applied to the embedded model (what the `finetune` optimizer
    # trains), and the sha256 it must have (set by the workbench when it records one).
    lora: str | None = None
    lora_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    seed: int = 0
    # USD per million tokens, for cost budgets and reports (null: unknown; the embedded and
    # recorded backends cost nothing).
    price_input_per_mtok: float | None = Field(default=None, ge=0)
    price_output_per_mtok: float | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "num_retries" in data and "retries" not in data:
            data = {**data, "retries": data["num_retries"]}
            del data["num_retries"]
        return data

    @model_validator(mode="after")
    def _endpoint_fields(self) -> LMSpec:
        if self.backend == "openai" and not self.api_base:
            raise ValueError("backend 'openai' needs api_base (e.g. http://127.0.0.1:8000/v1)")
        if self.backend != "openai" and (self.api_base or self.api_key_env):
            raise ValueError("api_base/api_key_env only apply to backend 'openai'")
        if self.lora and self.backend != "embedded":
            raise ValueError(f"lora applies to backend 'embedded' only, not {self.backend!r}")
        if self.backend == "embedded" and self.max_tokens >= self.n_ctx:
            raise ValueError(f"max_tokens {self.max_tokens} does not fit the context window n_ctx={self.n_ctx} "
                             "(the prompt needs room too)")
        return self


class OptimizerSpec(_Strict):
    name: str = "none"
    params: dict[str, Any] = Field(default_factory=dict)
    # GEPA's reflection LM; by default the task LM with prompt_max_tokens.
    reflection_lm: LMSpec | None = None
    # Optimizers that write instructions (COPRO, MIPROv2, SIMBA, GEPA) need longer outputs
    # than a label: their prompt model is the task LM with this max_tokens.
    prompt_max_tokens: int = Field(default=512, ge=16)
    # The optimizer's random seed (default: dataset.seed); `workbench run --seeds N` varies it.
    seed: int | None = None
    # The optimizer works on a seeded sample of this many training examples (null: all of them);
    # the program itself (candidate classifier, retrievers) still builds from the whole train split.
    max_train: int | None = Field(default=None, ge=1)


class EvalSpec(_Strict):
    split: Literal["test", "dev"] = "test"
    threads: int = Field(default=1, ge=1, le=64)
    max_failures: int | None = Field(default=None, ge=0)
    # The endpoint, not the model: this many LM calls failing in a row (after retries) stop
    # the run (FAILED, partial table logged); a run whose share of examples lost to LM call
    # failures exceeds max_lm_error_rate ends FAILED too: its score is not the model's.
    max_consecutive_lm_errors: int | None = Field(default=10, ge=1)
    max_lm_error_rate: float = Field(default=0.02, ge=0.0, le=1.0)


class BudgetSpec(_Strict):
    """What one run may spend, compile and evaluation together (null = no limit). `workbench
    run --max-lm-calls/--max-tokens/--max-cost-usd/--timeout` set the same keys."""

    max_lm_calls: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    # Run even when the estimate before the run exceeds the budget (the budget still stops it).
    allow_over_estimate: bool = False


class TrackingSpec(_Strict):
    enabled: bool = True
    uri: str = Field(default_factory=default_uri)  # unset: $WORKBENCH_TRACKING_URI / $MLFLOW_TRACKING_URI / default
    artifact_root: str = "mlruns/artifacts"
    experiment: str | None = None
    run_name: str | None = None
    # Per-example MLflow traces with assessments: all | failures | sample:N | none.
    traces: str = "all"
    # The run's MLflow GenAI objects: evaluation dataset, prompt versions, logged model.
    genai: bool = True

    @field_validator("traces")
    @classmethod
    def _traces(cls, value: str) -> str:
        from workbench.traces.evaluation import parse_policy

        parse_policy(value)
        return value


class Spec(_Strict):
    name: str
    description: str = ""
    task: str = "routing"
    dataset: DatasetSpec
    program: ProgramSpec
    metric: MetricSpec = Field(default_factory=MetricSpec)
    lm: LMSpec = Field(default_factory=LMSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    # `workbench sweep`: the values to search and the objectives (ignored by `workbench run`).
    search: SearchSpec | None = None
    # The user's own modules (dotted names, or .py paths relative to the spec's folder), imported
    # before names are resolved: programs, metrics, datasets, optimizers and tools of their own.
    imports: list[str] = Field(default_factory=list)

    # Where the spec came from, for error messages; not part of the YAML.
    source: str = Field(default="<spec>", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _optimizer_list(cls, data: Any) -> Any:
        """`optimizer: [step, step, ...]` is the `sequence` optimizer with those steps."""
        if isinstance(data, dict) and isinstance(data.get("optimizer"), list):
            data = {**data, "optimizer": {"name": "sequence", "params": {"steps": data["optimizer"]}}}
        return data

    def flat(self) -> dict[str, str]:
        """The spec as flat `a.b.c -> str` pairs with stable keys, for MLflow params."""
        return dict(sorted(_flatten(self.model_dump(mode="json", exclude={"source", "search"})).items()))


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: "null" if value is None else str(value)}


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UserError(f"expected key.path=value, got {text!r}", field="--set")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise UserError(f"empty key in {text!r}", field="--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set `key.path=value` pairs (values parsed as YAML scalars) into a raw spec dict."""
    for text in overrides:
        parts, value = _parse_override(text)
        try:
            set_path(data, ".".join(parts), value)
        except ValueError as exc:
            raise UserError(str(exc), field="--set") from None
    return data


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    field = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-after"))
    kind = error["type"]
    if kind == "extra_forbidden":
        return field, "unknown key"
    if kind == "missing":
        return field, "required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        message = f"{message} (got {got!r})"
    return field, message


def validate(data: Any, source: str) -> Spec:
    if not isinstance(data, dict):
        raise UserError("a spec must be a YAML mapping at the top level", file=source)
    try:
        spec = Spec.model_validate({**data, "source": source})
    except ValidationError as exc:
        errors = exc.errors()
        field, message = _describe(errors[0])
        more = f" (+{len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise UserError(message + more, file=source, field=field) from None
    if spec.imports:
        from workbench.user_code import import_user_modules, resolve

        spec.imports = resolve(spec.imports, spec_folder(source))
        import_user_modules(spec.imports, file=source)
    check_names(spec)
    if spec.search is not None:
        check_search_space(spec.search, data, source)
    return spec


def check_search_space(search: SearchSpec, data: dict[str, Any], source: str) -> None:
    """Every choice and both ends of every range must make a valid spec, before any trial."""
    base = {k: v for k, v in data.items() if k != "search"}
    for path, distribution in search.space.items():
        for value in distribution.edges():
            try:
                candidate = Spec.model_validate({**apply(base, {path: value}), "source": source})
                check_names(candidate)
            except ValueError as exc:  # pydantic's ValidationError, or set_path's
                detail = _describe(exc.errors()[0]) if isinstance(exc, ValidationError) else ("", str(exc))
                raise UserError(f"the value {value!r} makes the spec invalid: {detail[0]}: {detail[1]}",
                                file=source, field=f"search.space.{path}") from None
            except UserError as exc:
                raise UserError(f"the value {value!r} makes the spec invalid: {exc.field}: {exc.message}",
                                file=source, field=f"search.space.{path}") from None


def check_names(spec: Spec) -> None:
    """Resolve every registry name and parameter now, so a typo never starts a run. Uses the
    registries' on-disk index when it is fresh: no program, metric or optimizer is imported."""
    src = spec.source
    program = registry.programs.info(spec.program.name, file=src, field="program.name")
    _check_params(program, spec.program.params, src, "program.params")
    check_program_params(program, spec.program.params, src)
    registry.metrics.info(spec.metric.name, file=src, field="metric.name")
    for i, name in enumerate(spec.metric.summaries):
        registry.summaries.info(name, file=src, field=f"metric.summaries.{i}")
    loader = registry.datasets.info(spec.dataset.name, file=src, field="dataset.name")
    if loader["check"]:  # file datasets: params checked, paths resolved against the spec's folder
        spec.dataset.params = _dataset_check(spec.dataset.name, loader["check"])(
            spec.dataset.params, base=spec_folder(src), spec_task=spec.task, file=src)
    check_optimizer_params(spec.optimizer.name, spec.optimizer.params, src, "optimizer")
    for field, lm in (("lm", spec.lm), ("optimizer.reflection_lm", spec.optimizer.reflection_lm)):
        if lm is not None:
            registry.lm_backends.info(lm.backend, file=src, field=f"{field}.backend")
        if lm is not None and lm.backend == "embedded":
            from workbench.lm.models import resolve_model_path

            resolve_model_path(lm.model, source=src)
            if lm.lora:  # relative to the spec's folder, like data files
                lora = (spec_folder(src) / Path(lm.lora).expanduser()).resolve()
                if not lora.is_file() or lora.suffix != ".gguf":
                    raise UserError(f"LoRA adapter {lm.lora} is not a .gguf file", file=src, field=f"{field}.lora")
                lm.lora = str(lora)


def _dataset_check(name: str, check: str):
    """A dataset's spec-time parameter check, without importing the loader's module when the
    check is one of the light ones (file datasets and dataset folders)."""
    if check == "file":
        from workbench.data.file_params import check_file_params

        return check_file_params
    if check.startswith("folder:"):
        from workbench.data.folders import folder_check

        return folder_check(Path(check.removeprefix("folder:")) / "dataset.yaml")
    return registry.datasets.get(name).check_params


def spec_folder(source: str) -> Path:
    """Relative paths in a spec are relative to the spec file's folder (else the current one)."""
    path = Path(source)
    return path.resolve().parent if path.is_file() or path.suffix in (".yaml", ".yml") else Path.cwd()


def check_optimizer_params(name: str, params: dict[str, Any], source: str, field: str) -> None:
    """An optimizer's name, its parameter names and the combinations DSPy would refuse (for a
    sequence: every step's), from the registry index: no optimizer module is imported."""
    from workbench.optimize.rules import problem  # light: no DSPy import

    info = registry.optimizers.info(name, file=source, field=f"{field}.name")
    _check_params(info, params, source, f"{field}.params")
    if name == "sequence":
        from workbench.optimize.sequence import check_steps

        check_steps(params, source)
        return
    found = problem(name, dict(params))
    if found:
        raise UserError(f"{name}: {found[1]}", file=source, field=f"{field}.params.{found[0]}")


def _check_params(info: dict[str, Any], params: dict[str, Any], source: str, field: str) -> None:
    accepted = info["params"] or []
    for key in params:
        if key not in accepted and not info["any"]:
            known = ", ".join(sorted(accepted)) or "none"
            raise UserError(f"unknown parameter (accepted: {known})", file=source, field=f"{field}.{key}")


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise UserError("spec file not found", file=source)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise UserError(f"malformed YAML: {problem}", file=source, field=where) from None
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", file=source) from None
    if data is None:
        raise UserError("the spec is empty", file=source)
    if isinstance(data, dict) and overrides:
        data = apply_overrides(Spec._optimizer_list(data), overrides)  # `--set optimizer.seed=…` on a list too
    return validate(data, source)
