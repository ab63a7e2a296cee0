"""Holds a benchmark peer to the thread count it is measured at.

torch.set_num_threads sizes PyTorch's own pool only.  The BLAS under it
(Debian's torch calls whatever libblas.so.3 is installed; OpenBLAS's
pthread build) and OpenMP size their pools from the environment when they
load, and OpenBLAS otherwise takes every core: a "1 thread" peer that
computes on two.  pin_threads must run before torch is imported.
"""
import os

_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
         "BLIS_NUM_THREADS")


def thread_env(threads):
    """The variables that hold the pools to `threads`, for a child's env."""
    return {var: str(threads) for var in _VARS}


def pin_threads(threads):
    """Hold this process's pools to `threads` (before importing torch)."""
    os.environ.update(thread_env(threads))
