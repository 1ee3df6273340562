"""`retrieval_demos`: per query, the k most similar training examples become the demos.

Built for small LMs: no bootstrapping and no LM calls at compile time. The program keeps
the training examples in its `demo_pool` (saved as JSON in its state) and retrieves from
it on every call, so compile costs seconds where stock KNNFewShot bootstraps per query.
"""

from workbench.errors import UserError
from workbench.optimize import CompileContext
from workbench.registry import optimizer


@optimizer("retrieval_demos")
def retrieval_demos(ctx: CompileContext, *, k: int = 5, retriever: str = "tfidf", balanced: bool = False):
    """Per query, the k most similar training examples become demos (no LM calls to compile).

    `balanced`: when the program narrows the labels to candidates, take the nearest demos of
    each candidate label instead of the k nearest overall (which are often all one label).
    """
    if not isinstance(k, int) or k < 1:
        raise UserError(f"k must be a positive integer, got {k!r}", file=ctx.source, field="optimizer.params.k")
    if retriever != "tfidf":
        raise UserError(f"unknown retriever {retriever!r} (known: tfidf)", file=ctx.source,
                        field="optimizer.params.retriever")
    pool = getattr(ctx.student, "demo_pool", None)
    if pool is None:
        raise UserError("this program has no demo_pool to retrieve demos from", file=ctx.source, field="optimizer.name")
    program = ctx.student.deepcopy()
    if not isinstance(balanced, bool):
        raise UserError(f"balanced must be true or false, got {balanced!r}", file=ctx.source,
                        field="optimizer.params.balanced")
    program.demo_pool.fill([e.toDict() for e in ctx.trainset], k=k, balanced=balanced)
    program.demo_pool.index()  # build now, so compile time is measured where it is spent
    return program
