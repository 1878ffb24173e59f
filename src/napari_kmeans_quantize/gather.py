"""Per-pixel table lookups, and other passes over many points, spread over the cores.

The passes that touch every pixel (colour -> histogram row, row -> palette entry,
entry -> colour) are table lookups. numpy runs each on one core but releases the
GIL inside ``np.take``, so a few threads, each on its own slice of the index,
share them out. The passes are memory-bound, so the gain is modest: on a
12-megapixel photo and two cores, 30 -> 24 ms for the labels and 42 -> 36 ms for
the quantised colours.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

__all__ = [
    "check_range",
    "each_chunk",
    "each_slice",
    "one_core",
    "take",
    "take_pair",
    "take_pair_with",
    "workers",
]

# Below this many lookups a thread costs more than it saves.
_PARALLEL_MIN = 1 << 20
_POOL: ThreadPoolExecutor | None = None
_LOCAL = threading.local()


def _cores() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _workers() -> int:
    return 1 if getattr(_LOCAL, "one_core", False) else _cores()


def workers() -> int:
    """Threads this thread's passes may use (1 inside :func:`one_core`).

    Examples
    --------
    >>> with one_core():
    ...     workers()
    1
    """
    return _workers()


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Run this thread's passes on its own core only, inside the block.

    For callers that already keep every core busy with threads of their own (a
    sweep fits several k at once): slices handed to the shared pool would only
    queue behind each other's.

    Examples
    --------
    >>> with one_core():
    ...     take(np.arange(3), np.array([2, 1])).tolist()
    [2, 1]
    """
    before = getattr(_LOCAL, "one_core", False)
    _LOCAL.one_core = True
    try:
        yield
    finally:
        _LOCAL.one_core = before


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_cores(), thread_name_prefix="nkq-gather")
    return _POOL


def take(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Look up ``table[index]`` along the first axis, on every core.

    Parameters
    ----------
    table : (m, ...) ndarray
        The rows to pick from.
    index : (n,) ndarray of int
        Row of `table` for each output row; every value must be in ``[0, m)``.

    Returns
    -------
    out : (n, ...) ndarray
        ``table[index]``, in `table`'s dtype.

    Raises
    ------
    IndexError
        If an index is out of range.

    Examples
    --------
    >>> take(np.array([10, 20, 30]), np.array([2, 0, 2]))
    array([30, 10, 30])
    """
    table = np.asarray(table)
    index = np.asarray(index).ravel()
    out = np.empty((len(index), *table.shape[1:]), dtype=table.dtype)
    n_workers = _workers()
    if len(index) < _PARALLEL_MIN or n_workers == 1:
        np.take(table, index, axis=0, out=out)
        return out

    def run(lo: int, hi: int) -> None:
        np.take(table, index[lo:hi], axis=0, out=out[lo:hi])

    each_slice(len(index), run, _PARALLEL_MIN)
    return out


def take_pair(
    lut: np.ndarray, table: np.ndarray, index: np.ndarray, *, check: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Look up ``v = lut[index]`` and ``table[v]`` in one pass, on every core.

    Per-pixel labels and colours come from one read of the pixels' index
    instead of two gathers (the second reading the labels back); on a
    12-megapixel photo the colours were the slowest gather, as numpy copies
    each 3-byte row on its own.

    Parameters
    ----------
    lut : (m,) ndarray of int
        A value for every index.
    table : (t, c) ndarray
        The rows that the values pick.
    index : (n,) ndarray of int
        An index into `lut` for every output row.
    check : bool, optional
        Check that every index and value is in range (the kernel does not). Only
        a caller whose indices are valid by construction should skip it: on a
        12-megapixel photo the checks are passes over 12 M indices and a 16 M
        table.

    Returns
    -------
    values : (n,) ndarray
        ``lut[index]``, in `lut`'s dtype.
    rows : (n, c) ndarray
        ``table[lut[index]]``, in `table`'s dtype.

    Raises
    ------
    IndexError
        If an index or a value of `lut` is out of range.

    Examples
    --------
    >>> v, rows = take_pair(np.array([1, 0]), np.array([[5, 6], [7, 8]]),
    ...                     np.array([0, 0, 1]))
    >>> v.tolist(), rows.tolist()
    ([1, 1, 0], [[7, 8], [7, 8], [5, 6]])
    """
    lut = np.ascontiguousarray(lut).ravel()
    table = np.ascontiguousarray(table)
    index = np.ascontiguousarray(index).ravel()
    if check:
        # The kernel does not check bounds: these two checks stand for it.
        check_range("lut values", lut, len(table))
        check_range("index values", index, len(lut))
    return take_pair_with(
        table,
        len(index),
        lambda rows_of, values, rows, lo, hi: _take_pair_kernel(
            lut, rows_of, index, values, rows, lo, hi
        ),
        lut.dtype,
    )


def take_pair_with(
    table: np.ndarray,
    n: int,
    fill: Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], None],
    values_dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray]:
    """The outputs of a pair lookup of `n` rows, filled slice by slice on every core.

    ``fill(table, values, rows, lo, hi)`` must set ``values[lo:hi]`` and the
    rows of `table` they pick, ``rows[lo:hi]``, and release the GIL (a ``nogil``
    numba kernel). It is given `table` as a bitwise copy when numba cannot take
    its dtype (float16).

    Parameters
    ----------
    table : (t, c) ndarray
        The rows that the values pick.
    n : int
        Output rows.
    fill : callable
        Fills one slice of the outputs, as above.
    values_dtype : numpy dtype
        The dtype of the values.

    Returns
    -------
    values : (n,) ndarray
    rows : (n, c) ndarray
        In `table`'s dtype.

    Examples
    --------
    >>> def fill(table, values, rows, lo, hi):
    ...     values[lo:hi] = 1
    ...     rows[lo:hi] = table[1]
    >>> v, rows = take_pair_with(np.array([[5, 6], [7, 8]]), 2, fill, np.uint8)
    >>> v.tolist(), rows.tolist()
    ([1, 1], [[7, 8], [7, 8]])
    """
    table = np.ascontiguousarray(table)
    dtype = table.dtype
    if dtype == np.float16:
        # numba has no float16; a bitwise copy of the rows is the same thing.
        table = table.view(np.uint16)
    values = np.empty(n, dtype=values_dtype)
    rows = np.empty((n, table.shape[1]), dtype=table.dtype)
    each_slice(n, lambda lo, hi: fill(table, values, rows, lo, hi), _PARALLEL_MIN)
    return values, rows.view(dtype)


def check_range(what: str, values: np.ndarray, stop: int) -> None:
    """Raise IndexError unless every value lies in ``[0, stop)``.

    Examples
    --------
    >>> check_range("labels", np.array([0, 2]), 3)
    """
    if len(values) and (values.min() < 0 or values.max() >= stop):
        raise IndexError(f"{what} must lie in [0, {stop}).")


@njit(nogil=True, cache=True)
def _take_pair_kernel(lut, table, index, values, rows, lo, hi):  # pragma: no cover
    c = table.shape[1]
    for i in range(lo, hi):
        v = lut[index[i]]
        values[i] = v
        for j in range(c):
            rows[i, j] = table[v, j]


def each_slice(
    n: int, work: Callable[[int, int], None], min_len: int | None = None
) -> None:
    """Call ``work(lo, hi)`` on consecutive slices of ``range(n)``, one per core.

    `work` must release the GIL (a numpy call or a ``nogil`` numba kernel) and
    write only to its own slice; with fewer than `min_len` items it runs once, in
    the calling thread (default: the size below which a lookup stays on one
    core). The first error raised by any slice is re-raised.

    Examples
    --------
    >>> out = np.zeros(6)
    >>> def fill(lo, hi):
    ...     out[lo:hi] = np.arange(lo, hi)
    >>> each_slice(6, fill, min_len=1)
    >>> out.tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """
    n_workers = _workers()
    if n < (_PARALLEL_MIN if min_len is None else min_len) or n_workers == 1:
        work(0, n)
        return
    bounds = np.linspace(0, n, n_workers + 1).astype(np.intp)
    futures = [
        _pool().submit(work, int(bounds[i]), int(bounds[i + 1]))
        for i in range(n_workers)
    ]
    for f in futures:
        f.result()


def each_chunk(
    n: int, work: Callable[[int, int], None], n_chunks: int, min_len: int
) -> None:
    """Call ``work(lo, hi)`` on `n_chunks` consecutive slices of ``range(n)``,
    taken in turn by the calling thread and the other cores' threads.

    For short passes repeated many times (an iteration over a few hundred
    thousand points): a thread that the system leaves waiting for a core holds
    up the others by one chunk at most, not by a fixed share of the work, and
    the calling thread works instead of waiting. The same rules as
    :func:`each_slice` apply to `work`; with fewer than `min_len` items, or
    one core, it runs once, in the calling thread.

    Parameters
    ----------
    n : int
        Items.
    work : callable
        ``work(lo, hi)`` handles items lo..hi-1.
    n_chunks : int
        Slices to cut ``range(n)`` into (at least 1).
    min_len : int
        Fewest items worth more than one thread.

    Raises
    ------
    Exception
        The first error raised by any chunk, once every thread has stopped.

    Examples
    --------
    >>> out = np.zeros(6)
    >>> def fill(lo, hi):
    ...     out[lo:hi] = np.arange(lo, hi)
    >>> each_chunk(6, fill, 3, min_len=1)
    >>> out.tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    """
    n_workers = _workers()
    if n < min_len or n_workers == 1:
        work(0, n)
        return
    bounds = np.linspace(0, n, max(1, n_chunks) + 1).astype(np.intp).tolist()
    # next() on a shared iterator hands every chunk to exactly one thread
    # (under the GIL); `work` runs without it.
    chunks = iter(range(len(bounds) - 1))

    def run() -> None:
        for i in chunks:
            work(bounds[i], bounds[i + 1])

    futures = [_pool().submit(run) for _ in range(n_workers - 1)]
    try:
        run()
    finally:
        for f in futures:
            # Every thread is done with the shared arrays before any error
            # leaves: the first one raised is re-raised.
            f.exception()
    for f in futures:
        f.result()
