"""``make bench``: every benchmark and evaluation, printing its figures.

Starts one Rasa server and loads the embedding model once, then runs each section.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import platform
import sys
import time
from pathlib import Path

from bench import (
    conversation_bench,
    correctness_bench,
    dashboard_bench,
    encoder_bench,
    intents_bench,
    kb_bench,
    load_bench,
    profile_bench,
    report_bench,
    reviews_bench,
    scale_bench,
)
from bench.common import BenchContext


def machine() -> str:
    """What the figures were measured on."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


async def main(sections: list[str], misses: bool = False) -> None:
    """Run the named sections (all by default); ``misses`` lists each turn the correctness bench got wrong."""
    print(f"machine: {machine()}")
    started = time.monotonic()
    async with BenchContext.open() as ctx:
        runs = {
            "intents": intents_bench.run,
            "text-cap": intents_bench.run_text_cap,
            "kb": kb_bench.run,
            "encoder": encoder_bench.run,
            "conversations": conversation_bench.run,
            "correctness": functools.partial(correctness_bench.run, verbose=misses),
            "load": load_bench.run,
            "profile": profile_bench.run,
            "reports": report_bench.run,
            "dashboard": dashboard_bench.run,
            "reviews": reviews_bench.run,
            "reviews-import": reviews_bench.run_import,
            "reviews-retrain": reviews_bench.run_retrain,
            "reviews-ceiling": reviews_bench.run_ceiling,
            "scale": scale_bench.run,
        }
        on_request = ("reviews-retrain", "reviews-ceiling", "text-cap", "encoder", "scale")
        for name, run in runs.items():
            # These retrain on tens of thousands of embedded texts (minutes; encoder: torch beside ONNX, ~45 min): by name only.
            if (sections and name not in sections) or (not sections and name in on_request):
                continue
            print(f"\n== {name}", flush=True)
            for line in await run(ctx):
                print(line, flush=True)
    print(f"\nbench took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    args = sys.argv[1:]
    asyncio.run(main([a for a in args if a != "--misses"], misses="--misses" in args))
