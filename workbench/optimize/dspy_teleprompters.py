"""DSPy 3.4's teleprompters, each selectable by its DSPy class name.

Parameters in the spec are the teleprompter's own constructor and compile() arguments;
the workbench supplies the metric, the train/validation sets, the LMs, threads and seed.
"""

from __future__ import annotations

import inspect
from typing import Any

import dspy
import numpy as np

from workbench.errors import UserError
from workbench.optimize import CompileContext
from workbench.optimize.gepa_components import CalledRoundRobin
from workbench.optimize.reached import REACHED_ONLY, only_predictors
from workbench.program_contract import predictors_used
from workbench.registry import optimizer

# Arguments the workbench fills in itself; a spec may not set them.
_SUPPLIED = {"self", "metric", "student", "trainset", "valset", "teacher", "prompt_model", "task_model",
             "reflection_lm", "vectorizer", "num_threads", "requires_permission_to_run", "log_dir"}


def _params(cls: type, *, skip_compile: bool = False) -> set[str]:
    names = set(inspect.signature(cls.__init__).parameters)
    if not skip_compile:
        names |= set(inspect.signature(cls.compile).parameters)
    return {n for n in names if n not in _SUPPLIED and not n.startswith("_") and n not in ("kwargs", "few_shot_bootstrap_args")}


def _split(cls: type, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    init_names = set(inspect.signature(cls.__init__).parameters)
    init = {k: v for k, v in params.items() if k in init_names}
    return init, {k: v for k, v in params.items() if k not in init_names}


def _compile(ctx: CompileContext, cls: type, params: dict[str, Any], *, init: dict[str, Any],
             compile_args: dict[str, Any]) -> dspy.Module:
    own_init, own_compile = _split(cls, params)
    try:
        teleprompter = cls(**init, **own_init)
    except (TypeError, ValueError, AssertionError) as exc:
        raise UserError(f"{cls.__name__} rejected its parameters: {exc}", file=ctx.source, field="optimizer.params") from None
    return teleprompter.compile(ctx.student, **compile_args, **own_compile)


def _register(name: str, build, *, skip_compile: bool = False, extra: tuple[str, ...] = ()) -> None:
    cls = getattr(dspy, name)

    def factory(ctx: CompileContext, **params):
        if name not in REACHED_ONLY:
            return build(ctx, cls, params)
        # these propose for, and search over, every predictor: show them only those the training
        # data reaches (workbench/optimize/reached.py)
        with only_predictors(ctx.student, predictors_used(ctx.student, ctx.trainset)) as restore:
            return restore(build(ctx, cls, params))

    factory.accepted_params = _params(cls, skip_compile=skip_compile) | set(extra)
    factory.__doc__ = f"DSPy {name}; parameters: {', '.join(sorted(factory.accepted_params))}."
    optimizer(name)(factory)


_register("LabeledFewShot", lambda ctx, cls, p: _compile(ctx, cls, p, init={}, compile_args={"trainset": ctx.trainset}))
_register("BootstrapFewShot", lambda ctx, cls, p: _compile(
    ctx, cls, p, init={"metric": ctx.metric}, compile_args={"trainset": ctx.trainset}))
_register("BootstrapFewShotWithRandomSearch", lambda ctx, cls, p: _compile(
    ctx, cls, p, init={"metric": ctx.metric, "num_threads": ctx.threads},
    compile_args={"trainset": ctx.trainset, "valset": ctx.valset}))
_register("MIPROv2", lambda ctx, cls, p: _compile(
    ctx, cls, {"seed": ctx.seed, **p}, init={"metric": ctx.metric, "num_threads": ctx.threads,
                                            "prompt_model": ctx.prompt_lm, "task_model": ctx.lm},
    compile_args={"trainset": ctx.trainset, "valset": ctx.valset, "requires_permission_to_run": False}))
_register("COPRO", lambda ctx, cls, p: _compile(
    ctx, cls, p, init={"metric": ctx.metric, "prompt_model": ctx.prompt_lm},
    compile_args={"trainset": ctx.trainset, "eval_kwargs": {"num_threads": ctx.threads, "display_progress": False}}))
_register("SIMBA", lambda ctx, cls, p: _compile(
    ctx, cls, {"seed": ctx.seed, "bsize": min(32, len(ctx.trainset)), **p},
    init={"metric": ctx.metric, "num_threads": ctx.threads, "prompt_model": ctx.prompt_lm},
    compile_args={"trainset": ctx.trainset}))


def _gepa(ctx: CompileContext, cls: type, params: dict[str, Any]) -> dspy.Module:
    if not any(k in params for k in ("auto", "max_full_evals", "max_metric_calls")):
        params = {"auto": "light", **params}
    # track_stats: GEPA then reports its candidates' valset scores (`detailed_results`), which the
    # run logs as dev_score next to the test score; without it the dev-to-test gap goes unseen.
    params = {"track_stats": True, **params}
    # Rewrite only predictors the minibatch called: GEPA's plain round robin spends iterations on
    # a predictor this data never reaches (workbench/optimize/gepa_components.py).
    params = {"component_selector": CalledRoundRobin(), **params}
    # GEPA saves its search state in log_dir after every iteration and continues from it when
    # started again with the same folder: `workbench run --resume` gets the run's folder back.
    checkpoints = {"log_dir": str(ctx.checkpoint_dir / "gepa")} if ctx.checkpoint_dir is not None else {}
    return _compile(ctx, cls, params, init={"metric": ctx.feedback_metric, "reflection_lm": ctx.reflection_lm,
                                             "num_threads": ctx.threads, **checkpoints},
                    compile_args={"trainset": ctx.trainset, "valset": ctx.valset})


def _knn(ctx: CompileContext, cls: type, params: dict[str, Any]) -> dspy.Module:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [" ".join(str(v) for v in e.inputs().values()) for e in ctx.trainset]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts)

    def embed(batch: list[str]) -> np.ndarray:
        return vectorizer.transform(batch).toarray().astype(np.float32)

    try:  # every KNNFewShot parameter goes to its constructor (bootstrap arguments via **kwargs)
        # caching=False: DSPy's embedding cache keys a callable by name, so vectors from another
        # run's vectorizer (other train data, other width) would come back for the same text.
        teleprompter = cls(trainset=ctx.trainset, vectorizer=dspy.Embedder(embed, caching=False), metric=ctx.metric,
                           **{"k": 5, **params})
    except (TypeError, ValueError, AssertionError) as exc:
        raise UserError(f"KNNFewShot rejected its parameters: {exc}", file=ctx.source, field="optimizer.params") from None
    return teleprompter.compile(ctx.student)


_register("GEPA", _gepa)
_register("KNNFewShot", _knn, skip_compile=True,
          extra=("metric_threshold", "max_bootstrapped_demos", "max_labeled_demos", "max_rounds", "max_errors"))
