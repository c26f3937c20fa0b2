"""The learning curve that chose DIETClassifier's epoch count: dev-set accuracy per epoch budget.

``python -m bench.rasa_epochs 20 40 60 100`` trains a model per count (a few minutes each) in a
temporary copy of intents/ and evaluates it on bench/data/intents_dev.csv (never the test set).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import DATA
from intents.client import RasaClient
from intents.evaluate import evaluate, read_labelled
from intents.service import RasaService
from intents.training import PROJECT, default_cache, default_rasa_venv


async def measure(epochs: int, venv: Path) -> str:
    """Train with ``epochs`` and report dev accuracy and training time."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "intents"
        shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__", "*.py", ".rasa"))
        config = project / "config.yml"
        config.write_text(re.sub(r"epochs: \d+", f"epochs: {epochs}", config.read_text(encoding="utf-8")), encoding="utf-8")
        started = time.monotonic()
        subprocess.run(
            [
                str(venv / "bin" / "rasa"),
                "train",
                "nlu",
                "--config",
                str(config),
                "--nlu",
                str(project / "data"),
                "--out",
                str(project / "models"),
                "--fixed-model-name",
                "m",
            ],
            cwd=project,
            env={**os.environ, "RASA_TELEMETRY_ENABLED": "false", "RASA_CACHE_DIRECTORY": str(Path(tmp) / "cache")},
            check=True,
            capture_output=True,
        )
        trained = time.monotonic() - started
        service = RasaService(venv, project / "models" / "m.tar.gz")
        await service.start()
        try:
            async with aiohttp.ClientSession() as session:
                report = await evaluate(
                    RasaClient(session, [service.url], service.token, 10), read_labelled(DATA / "intents_dev.csv")
                )
        finally:
            await service.stop()
    return (
        f"epochs={epochs:>3}: dev accuracy={report.accuracy:.3f} macro_f1={report.macro_f1:.3f} "
        f"n={report.n}, trained in {trained:.0f} s"
    )


async def main(counts: list[int]) -> None:
    """Print one line per epoch count."""
    venv = Path(os.environ.get("KEFU_RASA_VENV") or default_rasa_venv(Path(os.environ.get("KEFU_CACHE", default_cache()))))
    for epochs in counts:
        print(await measure(epochs, venv), flush=True)


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [20, 40, 60, 100]))
