"""Parameter combinations DSPy's optimizers refuse, checked before any LM call.

DSPy raises these only inside `compile()` — some after bootstrapping has already spent calls
(MIPROv2's minibatch larger than the dev set) — and as a traceback. The spec check calls
`problem(name, params)` without sizes; the runner calls it again with the train and dev sizes
once the data is loaded. Mirrors DSPy 3.4 (MIPROv2's `auto` defaults to "light").
"""

from __future__ import annotations

from typing import Any

AUTO = ("light", "medium", "heavy")
SELECTORS = ("round_robin", "all")  # GEPA's named selectors; unset = the workbench's CalledRoundRobin


def problem(name: str, params: dict[str, Any], *, train: int | None = None,
            val: int | None = None) -> tuple[str, str] | None:
    """(parameter, why) for the first combination the optimizer would refuse, else None."""
    p = params
    if name == "MIPROv2":
        auto = p.get("auto", "light")
        if auto is not None and auto not in AUTO:
            return "auto", f"must be one of {', '.join(AUTO)} or null (got {auto!r})"
        given = [k for k in ("num_candidates", "num_trials") if p.get(k) is not None]
        if auto is not None and given:
            return given[0], (f"cannot be set together with auto: {auto} (MIPROv2 derives it from auto; "
                              "set auto: null to choose num_candidates and num_trials yourself)")
        if auto is None and len(given) < 2:
            return "auto", "auto: null needs both num_candidates and num_trials"
        size = int(p.get("minibatch_size", 35))
        if val is not None and p.get("minibatch", True) and size > val:
            return "minibatch_size", (f"{size} exceeds the {val} dev items: set minibatch: false or a smaller "
                                      "minibatch_size, or raise dataset.dev")
    elif name == "GEPA":
        given = [k for k in ("auto", "max_full_evals", "max_metric_calls") if p.get(k) is not None]
        if len(given) > 1:
            return given[1], f"set exactly one of auto, max_full_evals, max_metric_calls (got {', '.join(given)})"
        if p.get("auto") is not None and p["auto"] not in AUTO:
            return "auto", f"must be one of {', '.join(AUTO)} (got {p['auto']!r})"
        selector = p.get("component_selector")
        if selector is not None and selector not in SELECTORS:
            return "component_selector", f"must be one of {', '.join(SELECTORS)} (got {selector!r})"
    elif name == "COPRO":
        if int(p.get("breadth", 10)) <= 1:
            return "breadth", "must be greater than 1"
    elif name == "SIMBA":
        if train is not None and p.get("bsize") is not None and int(p["bsize"]) > train:
            return "bsize", f"{p['bsize']} exceeds the {train} training examples"
    elif name in ("finetune", "BootstrapFinetune"):
        return _finetune(p, train)
    elif name == "BetterTogether":
        from workbench.optimize.better_together import steps

        try:
            plan = steps(p.get("strategy", "p -> w -> p"), p.get("prompt_optimizer", "BootstrapFewShot"),
                         p.get("prompt_params"), p.get("finetune_params"))
        except ValueError as exc:
            return "strategy", str(exc)
        for step in plan:
            found = problem(step["name"], step["params"], train=train, val=val)
            if found:
                where = "prompt_params" if step["name"] != "finetune" else "finetune_params"
                return f"{where}.{found[0]}", f"{step['name']}: {found[1]}"
    if name in ("MIPROv2", "GEPA", "BootstrapFewShotWithRandomSearch") and val == 0:
        return "dataset.dev", f"{name} selects on the dev split, which is empty"
    return None


def check(spec, *, train: int | None = None, val: int | None = None) -> None:
    """Raise UserError (exit 2) naming `optimizer.params.<key>` (a sequence's step:
    `optimizer.params.steps.<i>.params.<key>`) and the spec file."""
    from workbench.errors import UserError
    from workbench.finetune.gguf_lora import block_count
    from workbench.optimize.sequence import steps_of

    steps = steps_of(spec.optimizer.name, dict(spec.optimizer.params))

    def where(i: int, name: str) -> str:
        return f"optimizer.params.steps.{i}" if len(steps) > 1 or name != spec.optimizer.name else "optimizer"

    for i, (name, params) in enumerate(steps):
        found = problem(name, params, train=train, val=val)
        if found:
            key, why = found
            field = key if key.startswith("dataset.") else f"{where(i, name)}.params.{key}"
            raise UserError(f"{name}: {why}", file=spec.source, field=field)
    trains = [(i, name, params) for i, (name, params) in enumerate(steps) if name in ("finetune", "BootstrapFinetune")]
    if trains:
        path = _check_base(spec, trains[0][1])
        for i, name, params in trains:
            layers = params.get("layers")
            blocks = block_count(path) if isinstance(layers, int) else None
            if blocks is not None and layers > blocks:
                raise UserError(f"{name}: layers {layers} exceeds the {blocks} transformer blocks of {path.name}",
                                file=spec.source, field=f"{where(i, name)}.params.layers")


def _check_base(spec, name: str):
    """Weight optimization needs the embedded LM, a llama-architecture GGUF, and no adapter already;
    returns the base model's path."""
    from workbench.errors import UserError

    if spec.lm.backend != "embedded":
        raise UserError(f"{name} trains the embedded model's weights: it needs lm.backend embedded "
                        f"(got {spec.lm.backend!r})", file=spec.source, field="lm.backend")
    if spec.lm.lora:
        raise UserError(f"{name} trains an adapter on the base model; lm.lora already names one (remove it)",
                        file=spec.source, field="lm.lora")
    from workbench.finetune.gguf_lora import base_architecture
    from workbench.lm.models import resolve_model_path

    path = resolve_model_path(spec.lm.model, source=spec.source)
    architecture = base_architecture(path)
    if architecture != "llama":
        raise UserError(f"{path.name} is a {architecture!r} model; {name} writes LoRA adapters for llama-architecture "
                        "GGUF models only", file=spec.source, field="lm.model")
    return path


def _finetune(p: dict[str, Any], train: int | None) -> tuple[str, str] | None:
    """Training parameters (and, with the train size, a budget of zero steps or less than one batch)."""
    from workbench.errors import UserError
    from workbench.finetune.train import TrainConfig

    if p.get("source", "gold") not in ("gold", "bootstrap"):
        return "source", f"must be gold or bootstrap (got {p['source']!r})"
    known = {k: v for k, v in p.items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    try:
        config = TrainConfig(**known)
        examples = train if train is not None else 10**9
        if p.get("max_examples") is not None:
            examples = min(examples, int(p["max_examples"]))
        config.check(examples)
    except UserError as exc:
        return (exc.field or "").rsplit(".", 1)[-1], exc.message
    except (TypeError, ValueError) as exc:
        return "max_examples", str(exc)
    return None
