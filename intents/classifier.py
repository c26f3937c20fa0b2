"""A dense intent classifier: logistic regression on the shared sentence encoder's embeddings.

Rasa's DIET pipeline sees jieba words and character n-grams, so it learns the wording of its
own examples; sentence embeddings carry meaning across wordings it never saw. kefu combines the
two (``intents.ensemble``). Saved as plain arrays and JSON, no pickle.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1"
# Inverse regularisation: a one-off sweep on the real-message dev set (C = 4, 16, 64 gave 0.707,
# 0.735, 0.724 with the dense classifier alone) picked 16.
DEFAULT_C = 16.0


class Encoder(Protocol):
    """The sentence encoder shared with the knowledge base (kb.encoder satisfies it)."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


class ClassifierError(Exception):
    """No usable classifier file."""


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


class EmbeddingClassifier:
    """Multinomial logistic regression over L2-normalised sentence embeddings."""

    def __init__(
        self,
        labels: Sequence[str],
        coef: np.ndarray,
        bias: np.ndarray,
        encoder_name: str,
        memory: Mapping[str, str] | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self.coef = coef
        self.bias = bias
        self.encoder_name = encoder_name
        # The shop's own verdicts, by normalised text: a message an agent labelled is never guessed again.
        self.memory = dict(memory or {})

    def proba(self, embeddings: np.ndarray) -> np.ndarray:
        """P(intent) per row of embeddings, columns in ``labels`` order."""
        return _softmax(embeddings @ self.coef.T + self.bias)

    @classmethod
    def train(
        cls,
        embeddings: np.ndarray,
        intents: Sequence[str],
        encoder_name: str,
        c: float = DEFAULT_C,
        memory: Mapping[str, str] | None = None,
    ) -> EmbeddingClassifier:
        """Fit on precomputed embeddings (seconds for a few thousand examples)."""
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=5000).fit(embeddings, list(intents))
        labels = [str(x) for x in model.classes_]
        return cls(labels, model.coef_.astype(np.float32), model.intercept_.astype(np.float32), encoder_name, memory)

    def save(self, path: Path) -> None:
        """Write arrays and metadata to an .npz file (atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT_VERSION, "encoder": self.encoder_name, "labels": list(self.labels), "memory": self.memory}
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, coef=self.coef, bias=self.bias, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, encoder_name: str) -> EmbeddingClassifier:
        """Read a saved classifier; it must have been trained with the same encoder."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(data["meta"].tobytes())
                coef, bias = data["coef"], data["bias"]
        except (OSError, KeyError, ValueError) as exc:
            raise ClassifierError(f"cannot read intent classifier {path}: {exc}") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise ClassifierError(f"{path} is an older classifier format: retrain with `kefu train`")
        if meta.get("encoder") != encoder_name:
            raise ClassifierError(f"{path} was trained with {meta.get('encoder')}, not {encoder_name}: retrain with `kefu train`")
        return cls(meta["labels"], coef, bias, encoder_name, meta.get("memory"))
