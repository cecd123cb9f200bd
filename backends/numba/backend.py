"""Numba: the shared step compiled whole with ``numba.njit``, fused elementwise pieces, cached on disk."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import numpy as np

from backends.base import Backend, OwnOutputs, PreparedStep

__all__ = ["NumbaBackend"]


def _load_blas() -> None:
    """Load the BLAS the step may call (SciPy's, not always numpy's; MKL; AOCL-BLAS), so threadpoolctl sees them."""
    import scipy.linalg.cython_blas  # noqa: F401

    from backends.numba import choice

    try:
        choice.choose()
    except ValueError:  # a bad setting: available() says so
        pass


def _pieces(blas: str | tuple[str, str], dtype: str) -> dict:
    """The pieces replaced in the step: Numba's ``@`` ones, or those on the gemm of library
    ``blas`` (or of a pair: the forward products' library, the updates')."""
    from backends.numba import cblas, pieces

    forward, update = (blas, blas) if isinstance(blas, str) else blas
    if forward == "matmul":
        return pieces.PIECES
    return pieces.blas_pieces(cblas.gemm_for(forward, dtype), cblas.gemm_for(update, dtype))


def _offered_blas() -> tuple:
    """The products' libraries for this process (``choice.choose``), its warning said once."""
    from backends.numba import choice

    offered, warning = choice.choose()
    choice.warn(warning)
    return offered


class NumbaBackend(Backend):
    """numpy arrays in, the step of ``kernels.make_step`` compiled as one Numba function.

    The step is ``make_step(numpy, jit=stable_njit, **pieces)``: the shared sequence, five
    pieces replaced by fused loops from ``backends.numba.pieces``, the products by Numba's
    ``@`` or by the gemm of the BLAS ``backends.numba.choice`` chooses (the CPU maker's, MKL or
    AOCL-BLAS, where a product runs faster on it than on SciPy's; ``MLPBENCH_NUMBA_BLAS``),
    the SGD update then fused into its product. Nothing runs in
    Numba's parallel loops, so only the BLAS is threaded; ``threads(n)`` still sets Numba's
    pool to ``n`` so the two never exceed it.
    """

    name = "numba"
    updates_in_place = True
    library = "numba"
    install_hint = "pip install 'mlpbench[numba]'"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._steps: dict[tuple, Any] = {}
        self._picked: dict[str, Any] = {}  # dtype -> the last choice.Products picked

    def _import(self) -> Any:
        import numba
        import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot needs SciPy's BLAS)

        return numba

    def available(self) -> tuple[bool, str]:
        try:
            self._import()
        except ImportError as exc:
            return False, f"numba and scipy are needed ({exc}); {self.install_hint}"
        from backends.numba import choice

        try:
            choice.requested()
            choice.kept_file()
        except ValueError as exc:
            return False, str(exc)
        return True, ""

    @property
    def xp(self) -> Any:
        return np

    def asarray(self, array: Any) -> Any:
        # A copy, as numpy's backend makes: the caller's arrays stay the caller's.
        return np.array(array, copy=True, order="C")

    def scalar(self, value: float, dtype: str) -> Any:
        return np.dtype(dtype).type(value)

    def compiled_step(self, make_step: Callable, blas: str | tuple[str, str] = "matmul",
                      dtype: str = "float64") -> Any:
        """The Numba-compiled ``train_step`` (a dispatcher) built by ``make_step`` on library
        ``blas``'s gemm in ``dtype`` (``matmul``: Numba's ``@``, any dtype; a pair: the forward
        products' library and the updates'), once per process."""
        from backends.numba.pieces import stable_njit

        pair = (blas, blas) if isinstance(blas, str) else tuple(blas)
        key = (make_step, pair, None if pair[0] == "matmul" else dtype)
        if key not in self._steps:
            self._steps[key] = make_step(np, jit=stable_njit, **_pieces(pair, dtype)).train_step
        return self._steps[key]

    def _picked_for(self, offered: tuple[str, ...], dtype: str, x: Any, W: Any) -> tuple[str, str]:
        """The (forward, update) libraries at the sizes of ``x`` and ``W``, measured once (``pick``)."""
        from backends.numba import choice

        products = choice.pick(offered, dtype, x.shape[0], x.shape[1], W.shape[1])
        self._picked[dtype] = products
        return products.forward, products.update

    def prepare(self, make_step: Callable, *, lr: float, dtype: str) -> PreparedStep:
        """The compiled step; its first call with a dtype compiles, or loads Numba's disk cache.

        Where two libraries are offered (``MLPBENCH_NUMBA_BLAS=auto`` with the CPU maker's
        BLAS installed), the first call at each size measures which computes each product
        faster (``choice.pick``) and takes the step compiled on that pair.
        W and S are updated in place when they are this step's own previous outputs, as in
        a training loop (as the jax backend donates them); the caller's first W and S are
        copied, and stay as they were. Keep a copy of an intermediate W or S you need later.
        """
        offered = _offered_blas()
        lr_ = self.scalar(lr, dtype)
        to_dtype = np.dtype(dtype).type
        if len(offered) == 1:
            train_step = self.compiled_step(make_step, offered[0], dtype)

            def run(x, t, W, S):
                W, S, loss = train_step(x, t, W, S, lr_)
                return W, S, to_dtype(loss)  # Numba returns scalars as Python floats

            return OwnOutputs(run, np.copy)
        by_size: dict[tuple, Any] = {}

        def run_picked(x, t, W, S):
            key = (x.shape, W.shape)
            step = by_size.get(key)
            if step is None:
                step = by_size[key] = self.compiled_step(
                    make_step, self._picked_for(offered, dtype, x, W), dtype)
            W, S, loss = step(x, t, W, S, lr_)
            return W, S, to_dtype(loss)

        return OwnOutputs(run_picked, np.copy)

    def describe(self, dtype: str) -> dict:
        """The base facts and ``blas``: the products' library, its version and threads, the
        setting; where ``pick`` chose, ``products``: each product's library at the last size
        run, the times it measured and the named file it was read from (``kept``); where the
        setting forced a pair, that pair."""
        from backends.numba import choice, libraries

        picked = self._picked.get(dtype)
        if picked is None:
            fixed = choice.choose()[0][0]
            if not isinstance(fixed, str):  # a forced pair: recorded as a pick is
                picked = choice.Products(*fixed, sizes=())
        name = picked.forward if picked is not None else fixed
        blas = {**libraries.facts(name), "setting": choice.requested()}
        if picked is not None:
            blas["products"] = picked.record()
        return {**super().describe(dtype), "blas": blas}

    def prepare_pieces(self, make_pieces: Callable, *, lr: float, dtype: str) -> dict[str, Callable]:
        """The compiled step's own pieces (``pieces``, on the BLAS ``prepare`` chooses;
        ``grad_h`` by Numba's ``@``), each compiled alone; ``weight_update`` writes over P and
        ``relu_backward`` over grad_h, as in the step. Where two libraries are offered, the
        first ``forward`` call at a size picks them as ``prepare`` does; the products' pieces
        follow it."""
        from backends.numba.pieces import stable_njit

        offered = _offered_blas()

        def numba_pieces(blas):
            def make(xp):
                return make_pieces(xp, jit=stable_njit, **_pieces(blas, dtype))
            return super(NumbaBackend, self).prepare_pieces(make, lr=lr, dtype=dtype)

        if len(offered) == 1:
            return numba_pieces(offered[0])
        current = numba_pieces(offered[0])  # until a forward call picks
        by_size: dict[tuple, dict] = {}

        def forward(x, W, S):
            key = (x.shape, W.shape)
            if key not in by_size:
                by_size[key] = numba_pieces(self._picked_for(offered, dtype, x, W))
            current.update(by_size[key])
            return current["forward"](x, W, S)

        pieces = dict(current)
        pieces["forward"] = forward
        pieces["weight_update"] = lambda P, a, grad_out: current["weight_update"](P, a, grad_out)
        return pieces

    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[dict]:
        """Limit the BLAS (numpy's, SciPy's, MKL's, AOCL's) and Numba's pool to ``n`` together; restore after."""
        import numba
        from threadpoolctl import threadpool_limits

        _load_blas()
        before = numba.get_num_threads()
        with threadpool_limits(limits=n):
            if n is not None:
                # Numba's pool cannot grow past NUMBA_NUM_THREADS; the info says what was used.
                numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            try:
                yield self.thread_info()
            finally:
                numba.set_num_threads(before)

    def thread_info(self) -> dict:
        import numba

        _load_blas()
        info = super().thread_info()
        info["numba"] = numba.get_num_threads()
        return info

