"""Sentence embeddings: the swappable encoder behind knowledge-base search and sentiment."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MODEL = str(Path.home() / ".cache" / "kefu" / "e5-small-2")
DEFAULT_VARIANT = "int8"  # which ONNX export open_encoder prefers; "torch" skips ONNX


class EncoderError(Exception):
    """The requested encoder cannot be opened."""


def text_prefix(model: str) -> str:
    """What goes before every text for ``model``: e5 models expect a prefix."""
    # "query: " on both sides suits question-to-question matching.
    return "query: " if "e5" in Path(model).name.lower() else ""


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
        self.prefix = text_prefix(model)
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


class OnnxEncoder:
    """A sentence-transformers folder's ONNX export (kb.onnx_export) run by onnxruntime: the same
    tokenizer, truncation, prefix and mean pooling as SentenceTransformerEncoder, without torch."""

    def __init__(self, model: str, variant: str = "int8", threads: int | None = None, batch_size: int = 32) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        from kb.onnx_export import EXPORT_VERSION, read_layout, variant_path

        folder = Path(model).expanduser()
        path = variant_path(folder, variant)
        if path is None:
            raise EncoderError(f"{model} has no current ONNX export of {variant}: run python -m kb.onnx_export {model}")
        layout = read_layout(folder)
        # Saved models record the encoder's name: vectors from another graph must not pass for torch's.
        self.name = f"{model}#onnx-{variant}-v{EXPORT_VERSION}"
        self.variant = variant
        self.batch_size = batch_size
        self.prefix = text_prefix(model)
        self.dimension = int(json.loads((layout.transformer / "config.json").read_text())["hidden_size"])
        self._tokenizer = Tokenizer.from_file(str(layout.tokenizer))
        # Set once here and never again: encode() then only reads the tokenizer, so threads may share it.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=layout.max_seq_length)
        pad = self._tokenizer.token_to_id("<pad>")  # padded positions are masked out: any id would do
        self._pad_id = 0 if pad is None else pad
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # InferenceSession.run may be called from several threads at once.
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        logger.info("embedding model loaded: %s (%s, %d threads)", model, path.name, options.intra_op_num_threads)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` (blocking: call it off the event loop)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch([self.prefix + t for t in texts])
        # Batches of similar lengths keep the padding small.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.full((len(chunk), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            (hidden,) = self._session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[chunk] = pooled / np.maximum(norms, 1e-12)
        return out


def open_encoder(model: str, variant: str = DEFAULT_VARIANT, threads: int | None = None) -> Encoder:
    """The ONNX encoder when ``model`` is a folder with a current export of ``variant``, else
    sentence-transformers (any model name or path, as KEFU_EMBED_MODEL allows)."""
    from kb.onnx_export import variant_path

    folder = Path(model).expanduser()
    if variant != "torch" and folder.is_dir() and variant_path(folder, variant) is not None:
        return OnnxEncoder(model, variant, threads)
    if variant != "torch":
        logger.info("no current ONNX export of %s in %s: using sentence-transformers", variant, model)
    return SentenceTransformerEncoder(model)


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


class _Call:
    """One caller's texts waiting in BatchingEncoder's queue."""

    def __init__(self, texts: list[str]) -> None:
        import threading

        self.texts = texts
        self.done = threading.Event()  # set with a result or an error, or to hand the caller the lead
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class BatchingEncoder:
    """Runs the small encodes that arrive together as one batch: messages answered at the same time
    share one model run instead of queueing for one each.

    The first caller runs its texts at once (no added wait when it is alone); callers that arrive
    while a run is going queue, and the next run takes all of them. When its own texts are done the
    running caller hands the lead to the first one still waiting. Calls of more than ``small`` texts
    (catalogue loads, training) run on their own as before, so that a re-embed never holds up a
    message behind it.
    """

    def __init__(self, inner: Encoder, small: int = 8) -> None:
        import threading

        self.inner = inner
        self.name = inner.name
        self.small = small
        self._lock = threading.Lock()
        self._queue: list[_Call] = []
        self._busy = False
        self.runs = 0  # model runs made for small calls (batched calls count once)
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` (blocking)."""
        if not texts or len(texts) > self.small:
            return self.inner.encode(texts)
        call = _Call(list(texts))
        with self._lock:
            self.calls += 1
            self._queue.append(call)
            lead = not self._busy
            self._busy = True
        if not lead:
            call.done.wait()  # answered by the running caller, or handed the lead
        while call.result is None and call.error is None:
            with self._lock:
                batch, self._queue = self._queue, []
                self.runs += 1
            self._run(batch, own=call)
        with self._lock:
            if self._queue:
                self._queue[0].done.set()  # its result is None: it runs the next batch
            else:
                self._busy = False
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def _run(self, batch: list[_Call], own: _Call) -> None:
        try:
            vectors = self.inner.encode([t for c in batch for t in c.texts])
        except BaseException as error:  # every caller of the batch gets the error, none waits forever
            for c in batch:
                c.error = error
        else:
            start = 0
            for c in batch:
                c.result = vectors[start : start + len(c.texts)]
                start += len(c.texts)
        for c in batch:
            if c is not own:
                c.done.set()


def load_encoder(model: str, variant: str = DEFAULT_VARIANT, threads: int | None = None) -> Encoder:
    """The encoder the shop's settings name, remembering recent single texts and batching the small
    encodes that arrive together (blocking, a second or a few): ONNX when exported, else
    sentence-transformers; ``threads`` None uses every core."""
    return CachedEncoder(BatchingEncoder(open_encoder(model, variant, threads)))
