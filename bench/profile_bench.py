"""Where a message's CPU goes in ``kefu serve``: py-spy samples the server while pushes arrive.

``python -m bench profile`` runs ``kefu serve`` on the demo shop (safe mode, AES) against the bench's
Rasa, attaches py-spy to it (every thread, idle waits left out, 100 samples a second) and sends
pushes at a fixed rate, each from a new shopper. Every sampled stack is put in the first component
found from its innermost frame outwards; CPU milliseconds per message are printed per component.
``KEFU_PROFILE_ROOT=DIR`` profiles the kefu of another checkout (an older commit) the same way,
to compare before and after.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import aiohttp

from bench.common import ROOT, BenchContext, serve_shop
from bench.load_bench import open_loop, pusher, shopper_texts

RATE = 20.0  # pushes per second: well under what the path sustains, so the samples are work, not queueing
SECONDS = 30.0
SAMPLES_PER_SECOND = 100
# (component, what a frame's text contains), tried in this order on each frame from the innermost out.
COMPONENTS = (
    ("encoder (onnxruntime / torch)", ("onnxruntime", "kb/encoder.py", "torch/", "tokenizers", "sentence_transformers")),
    ("jieba", ("jieba",)),
    ("database (sqlite3, sqlite-utils)", ("sqlite_utils", "sqlite3", "storage/db.py", "kb/db.py")),
    ("WeChat XML and AES (wechatpy, xmltodict, cryptography)", ("wechatpy", "xmltodict", "cryptography", "xml/")),
    ("intent model client and ensemble", ("intents/",)),
    ("knowledge-base ranking (numpy, kb/)", ("kb/", "numpy")),
    ("dialogue, handlers, conversations (bot/)", ("bot/",)),
    ("HTTP server and client (aiohttp, yarl, multidict)", ("aiohttp", "yarl", "multidict")),
)
# Frames of the machinery every component runs on: a stack counts here only if no component's frame is in it.
PLUMBING = ("event loop, threads, logging", ("asyncio", "concurrent/futures", "threading", "logging", "selectors"))
# Innermost frames that are waits py-spy's idle filter lets through: the event loop's epoll and an
# idle worker thread waiting for work.
IDLE = ("EpollSelector.select", "_worker (concurrent/futures/thread.py:81)")


def component(stack: str) -> str | None:
    """The component of one collapsed stack (frames outermost first, ';'-separated); None for a wait."""
    frames = stack.split(";")
    if any(frames[-1].startswith(idle) for idle in IDLE):
        return None
    for frame in reversed(frames):
        for name, needles in COMPONENTS:
            if any(n in frame for n in needles):
                return name
    if any(n in frame for frame in frames for n in PLUMBING[1]):
        return PLUMBING[0]
    return "other Python"


def breakdown(raw: Path) -> Counter[str]:
    """Samples per component from py-spy's raw (collapsed) output, waits left out."""
    counts: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit() and (name := component(stack)) is not None:
            counts[name] += int(n)
    return counts


async def run(ctx: BenchContext) -> list[str]:
    """CPU ms per message by component, for the kefu of ROOT (or KEFU_PROFILE_ROOT)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    root = Path(os.environ.get("KEFU_PROFILE_ROOT", ROOT))
    texts = shopper_texts()
    ids = itertools.count(50_000_000)
    raw = Path(tempfile.mkdtemp(prefix="kefu-profile-")) / "stacks.txt"
    async with serve_shop(ctx, ROOT / "kb" / "demo", mode="safe", root=root) as served, aiohttp.ClientSession() as http:
        push = pusher(http, served, texts, ids, "oProf")
        await open_loop(4, 3.0, push)  # warm-up: first-use costs are not load
        record = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(served.pid),
                "--format",
                "raw",
                "--rate",
                str(SAMPLES_PER_SECOND),
                "--nonblocking",
                "-o",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        await asyncio.sleep(1.0)  # py-spy attached
        step = await open_loop(RATE, SECONDS, push)
        await asyncio.sleep(1.0)
        record.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
        _, err = await asyncio.get_running_loop().run_in_executor(None, record.communicate)
    if not raw.exists():
        return [f"profile: py-spy wrote nothing ({err.decode(errors='replace').strip()[-300:]})"]
    counts = breakdown(raw)
    total = sum(counts.values())
    ms = 1000 / SAMPLES_PER_SECOND / max(step.sent, 1)
    label = "this checkout" if root == ROOT else str(root)
    head = f"profile of {label}: {step.sent} pushes at {RATE:g}/s, p50 {1000 * step.p50:.0f} ms"
    lines = [f"{head}, {total} samples (CPU, idle left out)"]
    for name, n in counts.most_common():
        lines.append(f"  {name}: {n * ms:.1f} ms per message ({n / total:.0%})")
    lines.append(f"profile: {total * ms:.1f} ms of kefu CPU per message (stacks: {raw})")
    return lines
