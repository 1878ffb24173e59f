"""Tests for the threaded per-pixel lookups."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_kmeans_quantize import gather


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_small_lookups_equal_fancy_indexing(n):
    rng = np.random.default_rng(n)
    table = rng.integers(0, 255, (37, 3), dtype=np.uint8)
    index = rng.integers(0, 37, n)
    out = gather.take(table, index)
    np.testing.assert_array_equal(out, table[index])
    assert out.dtype == table.dtype


def test_threaded_lookup_equals_fancy_indexing(monkeypatch):
    # Force the threaded path on a small input, with an uneven split.
    monkeypatch.setattr(gather, "_PARALLEL_MIN", 1)
    monkeypatch.setattr(gather, "_workers", lambda: 3)
    rng = np.random.default_rng(0)
    table = rng.integers(0, 1 << 16, 1 << 12, dtype=np.uint16)
    index = rng.integers(0, len(table), 100_003)
    np.testing.assert_array_equal(gather.take(table, index), table[index])
    rows = rng.random((50, 4))
    idx = rng.integers(0, 50, 10_001)
    np.testing.assert_array_equal(gather.take(rows, idx), rows[idx])


def test_out_of_range_index_raises_in_threads_too(monkeypatch):
    monkeypatch.setattr(gather, "_PARALLEL_MIN", 1)
    monkeypatch.setattr(gather, "_workers", lambda: 2)
    index = np.zeros(1000, dtype=np.intp)
    index[-1] = 10
    with pytest.raises(IndexError):
        gather.take(np.arange(10), index)


@pytest.mark.parametrize(
    ("run", "n_calls"),
    [
        (lambda n, work, min_len: gather.each_slice(n, work, min_len), 3),
        (lambda n, work, min_len: gather.each_chunk(n, work, 7, min_len), 7),
    ],
    ids=["each_slice", "each_chunk"],
)
def test_passes_cover_every_item_once(monkeypatch, run, n_calls):
    monkeypatch.setattr(gather, "_workers", lambda: 3)
    hits = np.zeros(10_007, dtype=np.int64)
    seen = []

    def work(lo, hi):
        hits[lo:hi] += 1
        seen.append((lo, hi))

    run(len(hits), work, 1)
    assert (hits == 1).all()
    assert len(seen) == n_calls
    bounds = sorted(seen)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(hits)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    seen.clear()
    run(len(hits), work, len(hits) + 1)
    assert seen == [(0, len(hits))]


def test_each_slice_reraises_a_slice_error(monkeypatch):
    monkeypatch.setattr(gather, "_workers", lambda: 2)

    def work(lo, hi):
        if lo > 0:
            raise RuntimeError(f"slice {lo}:{hi} failed")

    with pytest.raises(RuntimeError, match="slice 50:100 failed"):
        gather.each_slice(100, work, min_len=1)


def test_each_chunk_lets_the_calling_thread_take_chunks(monkeypatch):
    import threading

    monkeypatch.setattr(gather, "_workers", lambda: 2)
    me = threading.get_ident()
    release = threading.Event()
    seen = []

    def work(lo, hi):
        # A pool thread stalls on a chunk until the other five are done: the
        # calling thread must take those, not wait for a fixed share.
        if threading.get_ident() != me:
            assert release.wait(10)
        seen.append(lo)
        if len(seen) == 5:
            release.set()

    gather.each_chunk(60, work, 6, min_len=1)
    assert sorted(seen) == [0, 10, 20, 30, 40, 50]


def test_each_chunk_reraises_a_chunk_error(monkeypatch):
    monkeypatch.setattr(gather, "_workers", lambda: 2)
    done = []

    def work(lo, hi):
        if lo == 25:
            raise RuntimeError(f"chunk {lo}:{hi} failed")
        done.append(lo)

    with pytest.raises(RuntimeError, match="chunk 25:50 failed"):
        gather.each_chunk(100, work, 4, min_len=1)
    assert sorted(done) == [0, 50, 75]


@pytest.mark.parametrize("threads", [False, True])
def test_take_pair_equals_two_fancy_lookups(monkeypatch, threads):
    if threads:
        monkeypatch.setattr(gather, "_PARALLEL_MIN", 1)
        monkeypatch.setattr(gather, "_workers", lambda: 3)
    rng = np.random.default_rng(1)
    lut = rng.integers(0, 40, 300).astype(np.uint8)
    table = rng.random((40, 4)).astype(np.float32)
    index = rng.integers(0, 300, 10_007).astype(np.uint32)
    values, rows = gather.take_pair(lut, table, index)
    np.testing.assert_array_equal(values, lut[index])
    np.testing.assert_array_equal(rows, table[lut[index]])
    assert values.dtype == np.uint8 and rows.dtype == np.float32


def test_take_pair_copies_float16_rows_bit_for_bit():
    # numba has no float16: the rows go through as 16-bit integers.
    table = np.array([[0.1, -2.5, np.inf], [65504.0, 6e-8, -0.0]], dtype=np.float16)
    values, rows = gather.take_pair(np.array([1, 0]), table, np.array([0, 1, 1]))
    assert rows.dtype == np.float16
    np.testing.assert_array_equal(
        rows.view(np.uint16), table[[1, 0, 0]].view(np.uint16)
    )
    np.testing.assert_array_equal(values, [1, 0, 0])


def test_take_pair_checks_bounds():
    # The kernel does not check: out-of-range input must not reach it.
    with pytest.raises(IndexError, match=r"lut values"):
        gather.take_pair(np.array([0, 5]), np.zeros((5, 3)), np.array([0]))
    with pytest.raises(IndexError, match=r"index values"):
        gather.take_pair(np.array([0, 1]), np.zeros((5, 3)), np.array([2]))
    with pytest.raises(IndexError, match=r"index values"):
        gather.take_pair(np.array([0, 1]), np.zeros((5, 3)), np.array([-1]))


def test_one_core_keeps_the_passes_in_the_calling_thread(monkeypatch):
    import threading

    monkeypatch.setattr(gather, "_cores", lambda: 2)
    calls = []

    def work(lo, hi):
        calls.append((lo, hi, threading.get_ident()))

    with gather.one_core():
        gather.each_slice(10, work, min_len=1)
        with gather.one_core():
            pass
        # Still one core after a nested block ends.
        gather.each_slice(10, work, min_len=1)
    assert calls == [(0, 10, threading.get_ident())] * 2
    calls.clear()
    gather.each_slice(10, work, min_len=1)
    assert sorted(c[:2] for c in calls) == [(0, 5), (5, 10)]
    # Other threads are not affected by a block in this one.
    seen = []
    with gather.one_core():
        t = threading.Thread(target=lambda: seen.append(gather._workers()))
        t.start()
        t.join()
    assert seen == [2]


def test_take_pair_unchecked_gives_the_same_lookups():
    rng = np.random.default_rng(2)
    lut = rng.integers(0, 9, 50)
    table = rng.random((9, 3))
    index = rng.integers(0, 50, 999)
    checked = gather.take_pair(lut, table, index)
    unchecked = gather.take_pair(lut, table, index, check=False)
    for a, b in zip(checked, unchecked, strict=True):
        np.testing.assert_array_equal(a, b)
