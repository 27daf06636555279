"""The one BLAS call NumPy's API lacks: a matrix product added into an existing matrix.

    gemm_tn_update(a, b, c, alpha=-1.0, beta=1.0)     # c <- beta * c + alpha * a.T @ b, in place

np.matmul can only write a fresh product (`out=` overwrites), so an SGD step on a weight matrix
would take three passes over it: write the gradient, read it back, update the weight. The
BLAS routine behind np.matmul, cblas_?gemm, does it in one (its beta). It is called through
ctypes in the very library NumPy loaded (threadpoolctl names the file), so the arithmetic is
the same kernels np.matmul runs and the thread limits set on NumPy apply to it too.

Where that library or its symbol cannot be found, or the call fails a self-test against NumPy
on first use, the same update runs in NumPy (`backend()` says which). `numpy_only()` forces
the NumPy path, for benchmarks and tests that compare the two.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# By the usual naming convention a "64_" suffix marks the ILP64 interface (64-bit integer
# arguments); NumPy's own wheels ship OpenBLAS that way, with a "scipy_" prefix.
_SYMBOLS = (("scipy_cblas_{t}gemm64_", ctypes.c_int64), ("cblas_{t}gemm64_", ctypes.c_int64),
            ("scipy_cblas_{t}gemm", ctypes.c_int32), ("cblas_{t}gemm", ctypes.c_int32))

_gemm: dict | None = None  # np.dtype -> ctypes function; {} when only NumPy is available
_forced_numpy = False


def _bind(library_path: str) -> dict:
    lib = ctypes.CDLL(library_path)
    found = {}
    for dtype, letter, scalar in ((np.dtype(np.float32), "s", ctypes.c_float),
                                  (np.dtype(np.float64), "d", ctypes.c_double)):
        for pattern, integer in _SYMBOLS:
            fn = getattr(lib, pattern.format(t=letter), None)
            if fn is None:
                continue
            ptr = ctypes.c_void_p
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer,
                           scalar, ptr, integer, ptr, integer, scalar, ptr, integer]
            fn.restype = None
            found[dtype] = fn
            break
    return found


def _load() -> dict:
    try:
        from threadpoolctl import threadpool_info

        paths = [p["filepath"] for p in threadpool_info() if p.get("user_api") == "blas"]
        found = _bind(paths[0]) if paths else {}
    except (ImportError, OSError):
        found = {}
    for dtype in list(found):  # a wrong guess at the interface must not corrupt weights
        if not _self_test(found[dtype], dtype):
            del found[dtype]
    return found


def _self_test(fn, dtype) -> bool:
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(shape).astype(dtype) for shape in ((5, 7), (5, 3), (7, 3)))
    expected = 0.5 * c - 2.0 * (a.T @ b)
    _call(fn, a, b, c, -2.0, 0.5)
    return bool(np.allclose(c, expected, rtol=1e-4, atol=1e-5))


def _call(fn, a, b, c, alpha: float, beta: float) -> None:
    """cblas_?gemm(RowMajor, A transposed, B as is): c (D, M) from a (N, D) and b (N, M)."""
    n, d = a.shape
    m = b.shape[1]
    fn(_ROW_MAJOR, _TRANS, _NO_TRANS, d, m, n, alpha, a.ctypes.data, d, b.ctypes.data, m,
       beta, c.ctypes.data, m)


def backend() -> str:
    """'blas' when gemm_tn_update adds in place through BLAS, 'numpy' when it falls back."""
    global _gemm
    if _gemm is None:
        _gemm = _load()
    return "numpy" if _forced_numpy or not _gemm else "blas"


@contextmanager
def numpy_only():
    """Within the block, gemm_tn_update uses the NumPy path (for comparisons)."""
    global _forced_numpy
    previous, _forced_numpy = _forced_numpy, True
    try:
        yield
    finally:
        _forced_numpy = previous


def gemm_tn_update(a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float = -1.0,
                   beta: float = 1.0) -> None:
    """c <- beta * c + alpha * a.T @ b, in place.

    a: (N, D), b: (N, M), c: (D, M), all float32 or all float64; c C-contiguous and writable.
    One pass over c through BLAS (a and b are made contiguous if they are not); the same
    result from NumPy in two or three passes where BLAS is not available.
    """
    if a.ndim != 2 or b.ndim != 2 or c.shape != (a.shape[1], b.shape[1]) or a.shape[0] != b.shape[0]:
        raise ValueError(f"gemm_tn_update needs a (N, D), b (N, M), c (D, M); got {a.shape}, {b.shape}, {c.shape}")
    fn = None if backend() == "numpy" else _gemm.get(c.dtype)
    if (fn is None or a.dtype != c.dtype or b.dtype != c.dtype
            or not (c.flags.c_contiguous and c.flags.writeable)):
        if beta != 1.0:
            c *= beta
        if alpha == -1.0:
            c -= a.T @ b
        else:
            c += alpha * (a.T @ b)
        return
    _call(fn, np.ascontiguousarray(a), np.ascontiguousarray(b), c, float(alpha), float(beta))
