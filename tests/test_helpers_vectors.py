"""The suite's stored vectors: the model's own vectors, embedded once, kept between runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.fakes import FakeEncoder
from tests.helpers import StoredVectors


class CountingEncoder(FakeEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return super().encode(texts)


def test_stored_vectors_are_the_models_and_each_text_is_embedded_once(tmp_path: Path) -> None:
    inner = CountingEncoder()
    path = tmp_path / "v.npz"
    first = StoredVectors(inner, path)
    got = first.encode(["发什么快递", "多少钱", "发什么快递"])
    assert np.allclose(got, inner.encode(["发什么快递", "多少钱", "发什么快递"]))
    inner.seen.clear()
    assert np.allclose(first.encode(["多少钱"]), FakeEncoder().encode(["多少钱"]))
    assert inner.seen == []
    first.save()

    again = CountingEncoder()
    second = StoredVectors(again, path)  # the next run reads what the first saved
    assert np.allclose(second.encode(["多少钱", "包邮吗"]), FakeEncoder().encode(["多少钱", "包邮吗"]))
    assert again.seen == ["包邮吗"]
    assert second.encode([]).shape[0] == 0


def test_two_processes_saving_keep_both_their_vectors(tmp_path: Path) -> None:
    path = tmp_path / "v.npz"
    a, b = StoredVectors(FakeEncoder(), path), StoredVectors(FakeEncoder(), path)
    a.encode(["甲"])
    b.encode(["乙"])
    a.save()
    b.save()
    inner = CountingEncoder()
    StoredVectors(inner, path).encode(["甲", "乙"])
    assert inner.seen == []
