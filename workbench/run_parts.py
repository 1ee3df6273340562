"""The pieces of a run that other commands reuse: building and loading the spec's program,
its metric as DSPy calls it, and the evaluated items' fingerprint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dspy

from workbench import registry
from workbench.data import TaskData
from workbench.errors import UserError
from workbench.evaluate import score_of
from workbench.spec import Spec


def build_program(spec: Spec, data: TaskData) -> dspy.Module:
    factory = registry.programs.get(spec.program.name, file=spec.source, field="program.name")
    try:
        return factory(data, **spec.program.params)
    except (TypeError, ValueError) as exc:
        raise UserError(str(exc), file=spec.source, field="program.params") from None
    except UserError as exc:  # raised inside the factory (e.g. an unknown retriever name)
        exc.file = exc.file or spec.source
        raise


def load_program_state(program: dspy.Module, path: str | Path) -> None:
    """Load DSPy JSON state (never pickle) into a program built from the same spec."""
    path = Path(path)
    if path.suffix != ".json":
        raise UserError("a saved program must be DSPy JSON state (.json); pickles are never loaded", file=str(path))
    if not path.is_file():
        raise UserError("program file not found", file=str(path))
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        program.load_state(state)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"not valid JSON: {exc}", file=str(path)) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"state does not fit this spec's program: {type(exc).__name__}: {exc}", file=str(path)) from None


def _restrict(evalset: list[dspy.Example], ids: list[str], spec: Spec) -> list[dspy.Example]:
    by_id = {str(e.get("id", "")): e for e in evalset}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise UserError(f"{len(missing)} of the {len(ids)} examples to evaluate are not in this spec's "
                        f"{spec.eval.split} split (first: {missing[0]!r}); use the dataset settings the other run "
                        "used (dataset.test / dataset.seed / dataset.params)", file=spec.source, field="dataset")
    return [by_id[i] for i in ids]


def metric_fns(spec: Spec):
    fn = registry.metrics.get(spec.metric.name, file=spec.source, field="metric.name")

    def scored(example, prediction, trace=None, *args, **kwargs):
        return score_of(fn(example, prediction, trace))

    def with_feedback(example, prediction, trace=None, pred_name=None, pred_trace=None):
        value = fn(example, prediction, trace)
        if isinstance(value, dspy.Prediction):
            return value
        return dspy.Prediction(score=float(value), feedback=f"score {float(value):.2f}")

    return fn, scored, with_feedback


def eval_fingerprint(evalset: list[dspy.Example]) -> str:
    """The evaluated ids, in order, as 16 hex digits (runs on the same items share it)."""
    return hashlib.sha256(",".join(str(e.get("id", "")) for e in evalset).encode()).hexdigest()[:16]


def optimizer_sample(spec, trainset: list) -> list | None:
    """optimizer.max_train: a seeded sample (in split order) for the optimizer, None when it sees all."""
    limit = spec.optimizer.max_train
    if limit is None or limit >= len(trainset):
        return None
    import random

    from workbench.optimize import optimizer_seed

    keep = sorted(random.Random(optimizer_seed(spec)).sample(range(len(trainset)), limit))
    return [trainset[i] for i in keep]
