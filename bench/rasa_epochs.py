"""The learning curve that chose DIETClassifier's epoch count: accuracy per epoch budget.

``python -m bench.rasa_epochs 10 20 40`` trains a model per count (minutes each) on the shipped
training set and evaluates Rasa alone on bench/data/intents_dev.csv and, when it is beside the
clone, on the real JD messages (never the test set).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import jddc
from bench.common import DATA
from intents.client import Parse, RasaClient
from intents.evaluate import evaluate, read_labelled
from intents.normalise import normalise
from intents.service import RasaService
from intents.training import CONFIG, default_cache, default_rasa_venv, train_rasa, training_set


class _Normalised:
    """Rasa as kefu calls it: on normalised text."""

    def __init__(self, client: RasaClient) -> None:
        self.client = client

    async def parse(self, text: str) -> Parse:
        return await self.client.parse(normalise(text).text or text)


async def measure(epochs: int, cache: Path, venv: Path) -> str:
    """Train with ``epochs`` and report accuracy and training time."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yml"
        config.write_text(re.sub(r"epochs: \d+", f"epochs: {epochs}", CONFIG.read_text(encoding="utf-8")), encoding="utf-8")
        model = Path(tmp) / "m.tar.gz"
        started = time.monotonic()
        train_rasa(cache, venv, training_set(), model, quiet=True, config=config)
        trained = time.monotonic() - started
        service = RasaService(venv, model)
        await service.start()
        sets = [("dev", read_labelled(DATA / "intents_dev.csv"))]
        if jddc.dev_path():
            sets.append(("jddc", jddc.load()))
        try:
            async with aiohttp.ClientSession() as session:
                client = _Normalised(RasaClient(session, [service.url], service.token, 10))
                figures = [f"{name} accuracy={(await evaluate(client, rows)).accuracy:.3f}" for name, rows in sets]
        finally:
            await service.stop()
    return f"epochs={epochs:>3}: {' '.join(figures)}, trained in {trained:.0f} s"


async def main(counts: list[int]) -> None:
    """Print one line per epoch count."""
    cache = Path(os.environ.get("KEFU_CACHE", default_cache()))
    venv = Path(os.environ.get("KEFU_RASA_VENV") or default_rasa_venv(cache))
    for epochs in counts:
        print(await measure(epochs, cache, venv), flush=True)


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [10, 20, 40]))
