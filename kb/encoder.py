"""Sentence embeddings: the swappable encoder behind knowledge-base search and sentiment."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MODEL = str(Path.home() / ".cache" / "kefu" / "e5-small-2")


class Encoder(Protocol):
    """Turns texts into L2-normalised vectors."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


class SentenceTransformerEncoder:
    """Any sentence-transformers model by name or path; e5 models get their ``query:`` prefix."""

    def __init__(self, model: str, batch_size: int = 64) -> None:
        # No hub is reachable: a local folder must never turn into a download attempt.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = model
        self.batch_size = batch_size
        self._model = SentenceTransformer(model, device="cpu")
        # e5 expects a prefix; "query: " on both sides suits question-to-question matching.
        self.prefix = "query: " if "e5" in Path(model).name.lower() else ""
        logger.info("embedding model loaded: %s", model)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` (blocking: call it off the event loop)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = self._model.encode(
            [self.prefix + t for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class CachedEncoder:
    """Remembers the vectors of recent single texts: a message is embedded once, though the intent
    model and the knowledge-base search both ask for it."""

    def __init__(self, inner: Encoder, size: int = 2048) -> None:
        import threading
        from collections import OrderedDict

        self.inner = inner
        self.name = inner.name
        self.size = size
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``; a single text seen lately comes from memory (blocking)."""
        if len(texts) != 1:
            return self.inner.encode(texts)  # batches (catalogue loads, training) pass straight through
        text = texts[0]
        with self._lock:
            hit = self._recent.get(text)
            if hit is not None:
                self._recent.move_to_end(text)
                return hit[None, :]
        vector = self.inner.encode(texts)
        with self._lock:
            self._recent[text] = vector[0]
            while len(self._recent) > self.size:
                self._recent.popitem(last=False)
        return vector
