"""Helpers the benchmarks share: a demo-shop database and the real embedding model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import sqlite_utils

from kb import store
from kb.db import open_db
from kb.encoder import DEFAULT_MODEL, SentenceTransformerEncoder
from kb.importer import import_dir
from kb.search import KnowledgeBase, Thresholds

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "kb" / "demo"
DATA = Path(__file__).resolve().parent / "data"


def demo_db(folder: Path | None = None) -> sqlite_utils.Database:
    """A fresh database holding the demo shop."""
    folder = folder or Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    db = open_db(folder / "bench.db", [store.migrations])
    import_dir(db, DEMO)
    return db


def demo_kb(db: sqlite_utils.Database, thresholds: Thresholds | None = None) -> KnowledgeBase:
    """The demo knowledge base with the configured embedding model."""
    encoder = SentenceTransformerEncoder(os.environ.get("KEFU_EMBED_MODEL", DEFAULT_MODEL))
    kb = KnowledgeBase(encoder, thresholds)
    kb.load(db)
    return kb
