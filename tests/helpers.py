"""Small helpers shared by the tests and the benchmarks."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import numpy as np

from kb.encoder import Encoder


def free_port() -> int:
    """An unused loopback port, for a server started as its own process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StoredVectors:
    """The real encoder with its vectors kept on disk between test runs (the suite embeds the same
    shops and questions every time). The file is named after the encoder and its export's stamp, so
    a new model, export or variant starts an empty one; a text not in it is embedded by the model."""

    def __init__(self, inner: Encoder, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = path
        self._added = 0
        self._lock = threading.Lock()
        self._vectors = self._stored()

    def _stored(self) -> dict[str, np.ndarray]:
        if not self.path.exists():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as stored:
                return dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))
        except (OSError, ValueError, KeyError):
            return {}  # a torn or old file: embed again

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            fresh = self.inner.encode(missing)
            with self._lock:
                self._vectors.update(zip(missing, fresh, strict=True))
                self._added += len(missing)
        if not texts:
            return self.inner.encode([])
        with self._lock:
            return np.vstack([self._vectors[t] for t in texts]).astype(np.float32)

    def save(self) -> None:
        """Write the vectors if any were added (temp file, then rename: a reader never sees half a file)."""
        if not self._added:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        vectors = {**self._stored(), **self._vectors}  # what another test process saved meanwhile, too
        texts = list(vectors)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, texts=np.array(texts), vectors=np.vstack([vectors[t] for t in texts]))
        tmp.replace(self.path)
