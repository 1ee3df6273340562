"""`none`: evaluate the program as written (zero-shot, or whatever its code sets)."""

from workbench.optimize import CompileContext
from workbench.registry import optimizer


@optimizer("none")
def no_optimization(ctx: CompileContext):
    """Evaluate the program as written: zero-shot, no compile step."""
    return ctx.student
