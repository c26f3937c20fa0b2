"""Intent model: accuracy on written and real messages, Rasa vs dense vs both, and parse latency."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import numpy as np

from bench import jddc
from bench.common import DATA, TESTS, BenchContext, latency_line
from intents.classifier import EmbeddingClassifier
from intents.client import FALLBACK, OUT_OF_SCOPE, Parse, RasaClient
from intents.ensemble import FALLBACK_THRESHOLD, RASA_WEIGHT, EnsembleNlu, combine
from intents.evaluate import IntentReport, evaluate, format_report, read_labelled
from intents.normalise import normalise
from intents.training import classifier_path, default_cache

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def _sets() -> list[tuple[str, list[tuple[str, str]]]]:
    sets = [("held-out", read_labelled(TESTS / "intents_heldout.csv")), ("dev", read_labelled(DATA / "intents_dev.csv"))]
    if jddc.dev_path():
        sets.append(("jddc (real)", jddc.load()))
    return sets


def _report(rows: list[tuple[str, str]], ranked: list[list[tuple[str, float]]], threshold: float) -> IntentReport:
    pairs = []
    for (_, expected), ranking in zip(rows, ranked, strict=True):
        intent, confidence = ranking[0]
        pairs.append((expected, intent if confidence >= threshold else OUT_OF_SCOPE))
    return IntentReport(tuple(pairs))


async def _components(
    rasa: RasaClient, dense: EmbeddingClassifier, ctx: BenchContext, rows: list[tuple[str, str]]
) -> tuple[list[Parse | None], np.ndarray]:
    """Rasa's parse and the dense probabilities of every normalised row."""
    texts = [normalise(text).text for text, _ in rows]
    parses: list[Parse | None] = [await rasa.parse(t) if t else None for t in texts]
    probs = dense.proba(ctx.encoder.encode([t or "" for t in texts]))
    return parses, probs


def _ranked(
    parses: list[Parse | None], probs: np.ndarray, labels: tuple[str, ...], weight: float
) -> list[list[tuple[str, float]]]:
    out = []
    for parse, p in zip(parses, probs, strict=True):
        out.append(combine(parse, p, labels, weight) if parse else [(OUT_OF_SCOPE, 1.0)])
    return out


async def _drain(client: RasaClient | EnsembleNlu, queue: list[str]) -> None:
    while queue:
        await client.parse(queue.pop())


async def run(ctx: BenchContext) -> list[str]:
    """Written held-out and dev sets and the real JD messages: Rasa alone, dense alone, the ensemble."""
    lines = []
    cache = Path(default_cache())
    path = classifier_path(cache, ctx.encoder.name)
    dense = EmbeddingClassifier.load(path, ctx.encoder.name)
    async with aiohttp.ClientSession() as session:
        rasa = RasaClient(session, [ctx.rasa.url], ctx.rasa.token, timeout=10)
        ensemble = EnsembleNlu(rasa, dense, ctx.encoder.encode)
        sweep: dict[tuple[float, float], list[float]] = {}
        real_report: IntentReport | None = None
        for name, rows in _sets():
            raw = await evaluate(rasa, rows)
            parses, probs = await _components(rasa, dense, ctx, rows)
            alone = _report(rows, _ranked(parses, probs, dense.labels, 0.0), 0.0)
            lines.append(
                f"intents {name}: rasa alone accuracy={raw.accuracy:.3f} macro_f1={raw.macro_f1:.3f}; "
                f"dense alone accuracy={alone.accuracy:.3f} macro_f1={alone.macro_f1:.3f} n={raw.n}"
            )
            # The knobs are chosen on the dev sets only: the held-out set stays unseen.
            for weight in WEIGHTS if name != "held-out" else ():
                ranked = _ranked(parses, probs, dense.labels, weight)
                for threshold in THRESHOLDS:
                    sweep.setdefault((weight, threshold), []).append(_report(rows, ranked, threshold).accuracy)
            report = _report(rows, _ranked(parses, probs, dense.labels, RASA_WEIGHT), FALLBACK_THRESHOLD)
            lines.append(
                f"intents {name} (kefu, ensemble): accuracy={report.accuracy:.3f} macro_f1={report.macro_f1:.3f} n={report.n}"
            )
            if name.startswith("jddc"):
                real_report = report
        lines.append("rasa weight x fallback threshold, mean accuracy on the dev and real sets (never held-out):")
        for weight in WEIGHTS:
            cells = " ".join(f"{np.mean(sweep[(weight, t)]):.3f}" for t in THRESHOLDS)
            lines.append(f"  w={weight:.1f}: {cells}   (thresholds {' '.join(str(t) for t in THRESHOLDS)})")
        if real_report is not None:
            lines.append("real JD messages, per intent (kefu):")
            lines.extend("  " + line for line in format_report(real_report).splitlines())
        texts = [t for t, _ in read_labelled(TESTS / "intents_heldout.csv")]
        for label, client in (("rasa /model/parse", rasa), ("kefu ensemble parse", ensemble)):
            timings = []
            for text in texts:
                started = time.perf_counter()
                await client.parse(text)
                timings.append(time.perf_counter() - started)
            lines.append(latency_line(f"{label} sequential", timings))
            queue = list(texts * 3)
            started = time.perf_counter()
            await asyncio.gather(*(_drain(client, queue) for _ in range(8)))
            elapsed = time.perf_counter() - started
            lines.append(f"{label} throughput (8 concurrent): {len(texts) * 3 / elapsed:.0f} req/s")
    assert FALLBACK  # the evaluation counts Rasa's fallback verdict as out_of_scope
    return lines


CAPS = (64, 128, 256)
LONG = (100, 256, 1_000, 10_000, 100_000)


async def run_text_cap(ctx: BenchContext) -> list[str]:
    """How many characters of a message the NLU needs: accuracy when cut, and what a long text costs Rasa."""
    lines = []
    dense = EmbeddingClassifier.load(classifier_path(Path(default_cache()), ctx.encoder.name), ctx.encoder.name)
    lengths = sorted(len(text) for _, rows in _sets() for text, _ in rows)
    lines.append(f"message length over every labelled set: p99={lengths[int(0.99 * len(lengths))]} max={lengths[-1]} chars")
    async with aiohttp.ClientSession() as session:
        rasa = RasaClient(session, [ctx.rasa.url], ctx.rasa.token, timeout=120)
        for name, rows in _sets():
            if name == "held-out":
                continue
            cells = []
            for cap in CAPS:
                cut = [(text[:cap], intent) for text, intent in rows]
                parses, probs = await _components(rasa, dense, ctx, cut)
                report = _report(cut, _ranked(parses, probs, dense.labels, RASA_WEIGHT), FALLBACK_THRESHOLD)
                cells.append(f"{cap}: {report.accuracy:.3f}")
            lines.append(f"text cap, {name} accuracy when cut at N chars: " + ", ".join(cells))
        sample = "我想问一下这个商品什么时候发货，还有能不能开发票，"
        for length in LONG:
            # Straight to Rasa, past the client's own cut, to see what an uncut text would cost.
            text = (sample * (length // len(sample) + 1))[:length]
            started = time.perf_counter()
            async with session.post(f"{ctx.rasa.url}/model/parse", params={"token": ctx.rasa.token}, json={"text": text}) as resp:
                status = resp.status
            ms = 1000 * (time.perf_counter() - started)
            lines.append(f"rasa /model/parse of one {length}-char text: {ms:.0f} ms (HTTP {status})")
    return lines
