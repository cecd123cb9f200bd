"""The CuPy backend's fused kernels compile with NVRTC, without a GPU.

CuPy writes a kernel's CUDA source only at its first call on a device. Here the same
source is made by CuPy's own generator (private functions of CuPy 14: the test fails if
they move) and compiled by NVRTC for the GPUs named below, so a typo in a kernel shows
on a machine with no GPU. Needs CuPy and the NVRTC library (nvidia-cuda-nvrtc-cu12);
CI installs both (.ci/run).
"""
from __future__ import annotations

import numpy as np
import pytest

cupy = pytest.importorskip("cupy", reason="cupy is not installed")

from backends.cupy_backend import fused_kernels  # noqa: E402

#: sm_90: H100/H200; sm_80: A100.
ARCHES = ("90", "80")
DTYPES = ("float32", "float64")
NDARRAY, INDEXER, SCALAR = 1, 2, 3  # CuPy's _ArgKind


@pytest.fixture(scope="module")
def nvrtc():
    """CuPy's compiler module, once NVRTC is known to load."""
    from cupy.cuda import compiler

    try:
        compiler._get_nvrtc_version()
    except Exception as exc:  # the NVRTC shared library is not installed
        why = " ".join(str(exc).split())
        pytest.skip(f"NVRTC is not loadable ({type(exc).__name__}: {why}); "
                    "pip install nvidia-cuda-nvrtc-cu12")
    return compiler


def _arg(kind, dtype=None, ndim=1, contiguous=True):
    from cupy._core import _carray, _kernel, _scalar

    kind_type = {NDARRAY: cupy.ndarray, INDEXER: _carray.Indexer, SCALAR: _scalar.CScalar}
    return _kernel._ArgInfo(kind, kind_type[kind], dtype, ndim, contiguous, True)


def _elementwise_source(kernel, dtype, ndim):
    from cupy._core import _kernel

    args = tuple(_arg(INDEXER, ndim=ndim) if p.name == "_ind" else _arg(NDARRAY, dtype, ndim)
                 for p in kernel.params)
    types = _kernel._TypeMap((("T", dtype),))
    return _kernel._get_elementwise_kernel_code(
        args, types, kernel.params, kernel.operation, kernel.name, kernel.preamble)


def _reduction_source(kernel, dtype):
    # A reduction to a scalar, as the loss is: inputs flattened to 1-d, the output 0-d.
    from cupy._core import _kernel, _reduction, _scalar

    args = (*(_arg(NDARRAY, dtype, 1) for _ in range(kernel.nin)),
            *(_arg(NDARRAY, dtype, 0) for _ in range(kernel.nout)),
            _arg(INDEXER, ndim=1), _arg(INDEXER, ndim=0), _arg(SCALAR, np.dtype("int32"), 0))
    types = _kernel._TypeMap((("T", dtype), ("IndexT", np.dtype("int32"))))
    reduce_type = _scalar.get_typename(dtype) if kernel.reduce_type == "T" else kernel.reduce_type
    return _reduction._ReductionKernel_get_cached_function_code(
        kernel.nin, kernel.nout, kernel._params, args, types, kernel.name, 512, reduce_type,
        kernel.identity, kernel.map_expr, kernel.reduce_expr, kernel.post_map_expr,
        kernel.preamble, ())


def _compile(compiler, source, arch) -> bytes:
    from cupy._core import core

    options = core.assemble_cupy_compiler_options(()) + (
        f"-arch=sm_{arch}", "--device-as-default-execution-space")
    program = compiler._NVRTCProgram("#include <cupy/carray.cuh>\n" + source, "kern.cu",
                                     method="cubin")
    binary, _ = program.compile(options)
    return binary


KERNELS = sorted(fused_kernels(cupy))


def test_every_fused_kernel_is_listed():
    assert KERNELS == ["grad_y", "mask", "relu", "squared_sum", "update"]


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", KERNELS)
def test_fused_kernel_compiles(nvrtc, name, dtype, arch):
    kernel = fused_kernels(cupy)[name]
    dtype = np.dtype(dtype)
    if isinstance(kernel, cupy.ReductionKernel):
        sources = [_reduction_source(kernel, dtype)]
    else:
        sources = [_elementwise_source(kernel, dtype, ndim) for ndim in (1, 2)]
    for source in sources:
        assert f'void {kernel.name}(' in source
        assert "typedef " + ("float" if dtype == np.float32 else "double") + " T;" in source
        binary = _compile(nvrtc, source, arch)
        assert binary[:4] == b"\x7fELF", "NVRTC did not return a cubin"


def test_a_broken_kernel_fails_to_compile(nvrtc):
    # The check can fail: an undeclared name in the operation is a compile error.
    broken = cupy.ElementwiseKernel("T u", "T h", "h = u < (T)0 ? (T)0 : v", "mlpbench_broken")
    source = _elementwise_source(broken, np.dtype("float32"), 1)
    with pytest.raises(nvrtc.CompileException, match="identifier \"v\" is undefined"):
        _compile(nvrtc, source, "90")
