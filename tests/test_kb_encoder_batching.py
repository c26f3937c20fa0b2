"""kb.encoder.BatchingEncoder: small encodes that arrive together share one model run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kb.encoder import BatchingEncoder


class Slow:
    """A model whose first run waits until released, recording every batch it is given."""

    name = "slow"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail_on: str | None = None

    def encode(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if len(self.batches) == 1:
            self.started.set()
            self.release.wait(10)
        if self.fail_on in texts:
            raise RuntimeError("model failed")
        return np.array([[float(len(t)), float(sum(map(ord, t)))] for t in texts], dtype=np.float32)


def expected(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)))]


def wait_queued(encoder: BatchingEncoder, n: int) -> None:
    for _ in range(1000):
        if encoder.calls >= n:
            return
        threading.Event().wait(0.005)
    raise AssertionError("callers never queued")


def test_callers_arriving_during_a_run_share_the_next_one_and_each_gets_its_own_vectors() -> None:
    inner = Slow()
    encoder = BatchingEncoder(inner)
    texts = ["第一", "多少钱", "有货吗", "什么时候发货", "能退吗"]
    with ThreadPoolExecutor(len(texts)) as pool:
        first = pool.submit(encoder.encode, [texts[0]])
        assert inner.started.wait(5)
        rest = [pool.submit(encoder.encode, [t]) for t in texts[1:]]
        wait_queued(encoder, len(texts))
        inner.release.set()
        results = [first.result(5), *(f.result(5) for f in rest)]
    assert inner.batches[0] == [texts[0]]
    assert sorted(inner.batches[1]) == sorted(texts[1:])  # the four that queued: one run
    assert len(inner.batches) == 2 and encoder.runs == 2
    for text, vectors in zip(texts, results, strict=True):
        assert vectors.shape == (1, 2) and vectors[0].tolist() == expected(text)


def test_a_caller_alone_runs_at_once_and_large_calls_pass_straight_through() -> None:
    inner = Slow()
    inner.release.set()
    encoder = BatchingEncoder(inner, small=2)
    assert encoder.encode(["一"])[0].tolist() == expected("一")
    many = [f"商品{i}" for i in range(5)]
    assert encoder.encode(many).shape == (5, 2)
    assert inner.batches == [["一"], many] and encoder.runs == 1  # the large call is not a batched run


def test_a_failed_run_fails_each_of_its_callers_and_the_next_caller_still_runs() -> None:
    inner = Slow()
    inner.fail_on = "坏"
    encoder = BatchingEncoder(inner)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(encoder.encode, ["好"])
        assert inner.started.wait(5)
        bad = pool.submit(encoder.encode, ["坏"])
        other = pool.submit(encoder.encode, ["也好"])
        wait_queued(encoder, 3)
        inner.release.set()
        assert first.result(5)[0].tolist() == expected("好")
        with pytest.raises(RuntimeError):
            bad.result(5)
        with pytest.raises(RuntimeError):  # it shared the failed run
            other.result(5)
    assert encoder.encode(["再来"])[0].tolist() == expected("再来")
