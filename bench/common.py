"""Helpers the benchmarks share: the demo shop, the real embedding model, one Rasa server."""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

import server
from intents.service import RasaService
from intents.training import default_cache, default_rasa_venv, model_path
from kb.db import open_db
from kb.encoder import DEFAULT_MODEL, Encoder, SentenceTransformerEncoder
from kb.importer import import_dir
from kb.search import KnowledgeBase, Thresholds

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "kb" / "demo"
DATA = Path(__file__).resolve().parent / "data"
TESTS = ROOT / "tests" / "fixtures"


SHOPS = DATA / "shops"


@dataclass(frozen=True)
class Shop:
    """A shop to measure on: its catalogue folder, its questions and its conversations."""

    name: str
    folder: Path
    questions: Path
    conversations: Path | None


def shops() -> list[Shop]:
    """The demo shop (its held-out questions) and every dev shop under bench/data/shops."""
    found = [Shop("demo", DEMO, TESTS / "kb_heldout.csv", None)]
    for folder in sorted(p for p in SHOPS.iterdir() if (p / "products.csv").exists()):
        found.append(Shop(folder.name, folder, folder / "questions.csv", folder / "conversations.txt"))
    return found


def demo_db(folder: Path | None = None, shop: Path = DEMO) -> sqlite_utils.Database:
    """A fresh database holding the demo shop (or the shop in ``shop``)."""
    folder = folder or Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    db = open_db(folder / "bench.db", server.MIGRATIONS)
    import_dir(db, shop)
    return db


def load_encoder() -> Encoder:
    """The configured embedding model."""
    return SentenceTransformerEncoder(os.environ.get("KEFU_EMBED_MODEL", DEFAULT_MODEL))


def demo_kb(db: sqlite_utils.Database, thresholds: Thresholds | None = None, encoder: Encoder | None = None) -> KnowledgeBase:
    """The demo knowledge base with the configured embedding model."""
    kb = KnowledgeBase(encoder or load_encoder(), thresholds)
    kb.load(db)
    return kb


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def latency_line(label: str, seconds: list[float]) -> str:
    """p50/p95/p99 in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return (
        f"{label}: n={len(ms)} p50={percentile(ms, 50):.1f}ms p95={percentile(ms, 95):.1f}ms "
        f"p99={percentile(ms, 99):.1f}ms mean={statistics.fmean(ms):.1f}ms"
    )


@dataclass
class BenchContext:
    """Shared by every section: the encoder and a running Rasa server."""

    encoder: Encoder
    rasa: RasaService

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[BenchContext]:
        """Load the model and start Rasa for the whole run."""
        cache = Path(os.environ.get("KEFU_CACHE", default_cache()))
        rasa = RasaService(Path(os.environ.get("KEFU_RASA_VENV") or default_rasa_venv(cache)), model_path(cache))
        await rasa.start()
        try:
            yield cls(load_encoder(), rasa)
        finally:
            await rasa.stop()
