"""Run budgets: LM calls, tokens, dollars and wall time for one `workbench run`, compile and
evaluation together, every LM of the run (task, prompt, reflection) on one meter.

The meter sits where every model call passes (`Backend.complete`): a call is admitted only
while the spend is under the current cap, so a run overshoots its budget by at most the calls
already in flight (one per evaluation thread). Cache hits never reach a backend and cost
nothing. The runner reserves the evaluation's planned calls first and caps compile at the
rest; when compile reaches its cap the optimizer's remaining calls fail fast, it returns the
best program its completed trials found (or the program as written), and the evaluation
runs within the reserve.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

KEYS = ("max_lm_calls", "max_tokens", "max_cost_usd", "timeout_s")


class BudgetExhausted(RuntimeError):
    """Raised instead of an LM call once the run's budget (or the phase's share) is spent."""


@dataclass
class Spend:
    lm_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def as_metrics(self, prefix: str = "spend_") -> dict[str, float]:
        return {f"{prefix}lm_calls": self.lm_calls, f"{prefix}tokens": self.tokens, f"{prefix}cost_usd": self.cost_usd}


@dataclass
class Meter:
    """The run's spend against its budget; thread-safe, shared by the run's LM backends."""

    max_lm_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    timeout_s: float | None = None
    spent: Spend = field(default_factory=Spend)
    started: float = field(default_factory=time.monotonic)
    reason: str = ""
    phase: str = "run"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._cap_calls: float = math.inf
        self._cap_tokens: float = math.inf
        self._cap_cost: float = math.inf
        self._cap_seconds: float = math.inf

    @property
    def limited(self) -> bool:
        return any(getattr(self, k) is not None for k in KEYS)

    def cap(self, phase: str, *, calls: float = math.inf, tokens: float = math.inf, cost: float = math.inf,
            seconds: float = math.inf) -> None:
        """Limit this phase to these totals (counted from the run's start), within the budget."""
        with self._lock:
            self.phase, self.reason = phase, ""
            self._cap_calls, self._cap_tokens, self._cap_cost, self._cap_seconds = calls, tokens, cost, seconds

    def _limits(self) -> tuple[float, float, float]:
        def least(a, b):
            return min(a, b) if b is not None else a

        return (least(self._cap_calls, self.max_lm_calls), least(self._cap_tokens, self.max_tokens),
                least(self._cap_cost, self.max_cost_usd))

    def check(self) -> None:
        """Before a call: raise BudgetExhausted when the phase's cap or the budget is reached."""
        with self._lock:
            if not self.reason:
                self.reason = self._why()
            if self.reason:
                raise BudgetExhausted(self.reason)
            self.spent.lm_calls += 1  # counted when admitted: parallel threads cannot all slip past the cap

    def _why(self) -> str:
        calls, tokens, cost = self._limits()
        whose = "compile share of the budget" if self.phase == "compile" else "budget"
        if self.spent.lm_calls >= calls:
            return f"LM-call {whose} reached ({self.spent.lm_calls} of {calls:.0f})"
        if self.spent.tokens >= tokens:
            return f"token {whose} reached ({self.spent.tokens} of {tokens:.0f})"
        if self.spent.cost_usd >= cost:
            return f"cost {whose} reached (${self.spent.cost_usd:.4f} of ${cost:.4f})"
        seconds = min(self._cap_seconds, self.timeout_s if self.timeout_s is not None else math.inf)
        if time.monotonic() - self.started >= seconds:
            return f"time {whose} reached ({seconds:.0f} s)"
        return ""

    def add(self, input_tokens: int, output_tokens: int, price: tuple[float, float] = (0.0, 0.0)) -> None:
        """A call's tokens, and its cost at `price` (USD per million input, output tokens)."""
        price_in, price_out = price
        with self._lock:
            self.spent.tokens += int(input_tokens) + int(output_tokens)
            self.spent.cost_usd += (input_tokens * price_in + output_tokens * price_out) / 1e6


def price(lm_spec) -> tuple[float, float] | None:
    """USD per million (input, output) tokens for a spec's LM; None when unknown. Local
    backends (the embedded model, the recorded LM) cost nothing."""
    if lm_spec.price_input_per_mtok is not None or lm_spec.price_output_per_mtok is not None:
        return float(lm_spec.price_input_per_mtok or 0.0), float(lm_spec.price_output_per_mtok or 0.0)
    if lm_spec.backend in ("embedded", "recorded"):
        return 0.0, 0.0
    return None


@dataclass
class Plan:
    """The run's meter and the evaluation's reserve (None: no budget)."""

    meter: Meter
    compile_calls: int
    eval_calls: int

    def compile_cap(self) -> None:
        """Compile gets what the evaluation's reserve leaves: of calls, and of time in proportion
        to the planned calls (tokens and dollars are not reserved: the evaluation may use the rest)."""
        b = self.meter
        share = self.compile_calls / max(self.compile_calls + self.eval_calls, 1)
        self.meter.cap("compile", calls=(b.max_lm_calls - self.eval_calls) if b.max_lm_calls is not None else math.inf,
                       seconds=b.timeout_s * share if b.timeout_s is not None else math.inf)

    def evaluation_cap(self) -> None:
        self.meter.cap("evaluation")


def plan(spec, prepared, reporter, *, compiling: bool) -> Plan | None:
    """Print the estimate; refuse (exit 2) a budget the estimate exceeds, unless allowed."""
    from workbench.errors import UserError
    from workbench.optimize.estimate import estimate

    budget = spec.budget
    guess = estimate(spec, prepared)
    compile_calls = guess.compile_calls if compiling else 0
    total = compile_calls + guess.eval_calls
    prepared.planned_lm_calls = total  # logged with the run, beside what it spent
    reporter.info(f"planned LM calls: ~{total:,} = compile {compile_calls:,} ({guess.how}) + evaluation "
                  f"{guess.eval_calls:,}")
    if compiling:
        dev_advice(spec, len(prepared.valset), reporter, train=len(prepared.compile_trainset))
    meter = Meter(budget.max_lm_calls, budget.max_tokens, budget.max_cost_usd, budget.timeout_s)
    if not meter.limited:
        return None
    if budget.max_cost_usd is not None:
        lms = [spec.lm] + ([spec.optimizer.reflection_lm] if spec.optimizer.reflection_lm else [])
        for lm_spec in lms:
            if price(lm_spec) is None:
                raise UserError(f"a cost budget needs the price of {lm_spec.model!r}: set lm.price_input_per_mtok and "
                                "lm.price_output_per_mtok (USD per million tokens)", file=spec.source,
                                field="budget.max_cost_usd")
    if budget.max_lm_calls is not None and guess.eval_calls > budget.max_lm_calls and not budget.allow_over_estimate:
        raise UserError(f"the evaluation alone plans {guess.eval_calls:,} LM calls, over the budget of "
                        f"{budget.max_lm_calls:,}: raise it, evaluate fewer items, or pass --allow-over-estimate to score "
                        "as many as it allows", file=spec.source,
                        field="budget.max_lm_calls")
    if budget.max_lm_calls is not None and total > budget.max_lm_calls and not budget.allow_over_estimate:
        raise UserError(f"the run plans ~{total:,} LM calls, over the budget of {budget.max_lm_calls:,}; compile would "
                        f"get {budget.max_lm_calls - guess.eval_calls:,} of its ~{compile_calls:,} and stop early "
                        "(pass --allow-over-estimate to run anyway, or raise the budget)", file=spec.source,
                        field="budget.max_lm_calls")
    return Plan(meter, compile_calls, guess.eval_calls)


# Optimizers that choose among candidates by their dev score, and the dev size their own
# settings plan for (MIPROv2's auto validation sizes; GEPA's and random search's: a judgement).
DEV_GUIDANCE = {"MIPROv2": {"light": 100, "medium": 300, "heavy": 1000, None: 100}, "GEPA": 100,
                "BootstrapFewShotWithRandomSearch": 100, "COPRO": 50, "SIMBA": 50}


def dev_advice(spec, n: int, reporter, *, train: int | None = None) -> None:
    """Before an optimizer that selects on dev (COPRO, SIMBA: on the train examples it is given):
    how small a difference that many items can see."""
    from workbench.optimize import SELECTS_ON_TRAIN
    from workbench.optimize.sequence import steps_of
    from workbench.sweep.verdict import resolution, sizing

    for name, params in steps_of(spec.optimizer.name, dict(spec.optimizer.params)):
        guidance = DEV_GUIDANCE.get(name)
        if guidance is None:
            continue
        if isinstance(guidance, dict):
            guidance = guidance.get(params.get("auto", "light"), 100)
        if name in SELECTS_ON_TRAIN and train is not None:
            reporter.info(f"{name} selects on the {train} training examples it is given, not on dev: differences "
                          f"under ±{resolution(train):.2f} are noise (95%), and its own score of its choice is "
                          "in-sample")
            if train < guidance:
                reporter.warn(f"{name} plans for about {guidance} training examples and gets {train}: its choice "
                              "may be noise (raise dataset.train or optimizer.max_train)")
            continue
        reporter.info(f"{name} selects on the {sizing(n)}")
        if n < guidance:
            reporter.warn(f"{name} plans for about {guidance} dev items and gets {n}: its choice may be noise "
                          "(raise dataset.dev)")


def attach(plan_: Plan | None, specs_and_lms) -> None:
    """Put the run's meter (and each LM's price) on every backend of the run."""
    if plan_ is None:
        return
    for lm_spec, lm in specs_and_lms:
        if lm is not None:
            lm.engine.budget = plan_.meter
            lm.engine.price = price(lm_spec) or (0.0, 0.0)
