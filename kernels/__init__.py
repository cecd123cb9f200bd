"""The two-layer network's training step, written once against the Python array API standard.

Nothing here imports an array library: every function receives the namespace ``xp``
(or, for data, a random generator) from its caller.
"""
from kernels.problem import array_elements, make_problem, problem_bytes, step_flops
from kernels.step import PIECES, Step, make_pieces, make_step, resolve_pieces

__all__ = [
    "PIECES",
    "Step",
    "array_elements",
    "make_pieces",
    "make_problem",
    "make_step",
    "problem_bytes",
    "resolve_pieces",
    "step_flops",
]
