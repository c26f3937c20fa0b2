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
