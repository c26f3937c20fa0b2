"""Bot resolution rate over scripted multi-turn conversations (bench/data/conversations.txt)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import server
from bench.common import DATA, DEMO, BenchContext, latency_line
from bot import texts
from bot.cli import local_bot
from bot.wechat import Inbound
from kb.importer import import_dir
from storage.db import open_db


def read_conversations(path: Path) -> list[tuple[str, list[str]]]:
    """Blocks of ``openid`` then messages, separated by blank lines; # starts a comment."""
    blocks: list[tuple[str, list[str]]] = []
    for chunk in path.read_text(encoding="utf-8").split("\n\n"):
        lines = [line.strip() for line in chunk.splitlines() if line.strip() and not line.startswith("#")]
        if lines:
            blocks.append((lines[0], lines[1:]))
    return blocks


async def run(ctx: BenchContext) -> list[str]:
    """Play every conversation through the real dialogue and count those that needed a person."""
    folder = Path(tempfile.mkdtemp(prefix="kefu-conv-"))
    db_path = folder / "conv.db"
    db = open_db(db_path, server.MIGRATIONS)
    import_dir(db, DEMO)
    db.close()
    settings = dataclasses.replace(
        server.load_settings({}),
        db=str(db_path),
        rasa_url=ctx.rasa.url,
        rasa_token=ctx.rasa.token,
        agent_hours="mon-sun 00:00-23:59",
    )
    conversations = read_conversations(DATA / "conversations.txt")
    timings: list[float] = []
    # Replies that do not answer: the bot did not know, asked what was meant, or asked which product.
    non_answers = (
        texts.DONT_KNOW,
        texts.WHICH_PRODUCT,
        texts.CLARIFY_INTENT.split("{")[0],
        texts.CLARIFY_ENTRIES.split("\n")[0],
    )
    stuck: set[str] = set()
    async with local_bot(settings, server.open_database, encoder=ctx.encoder) as dispatcher:
        for index, (openid, messages) in enumerate(conversations):
            for turn, text in enumerate(messages):
                inbound = Inbound(f"bench:{index}:{turn}", openid, "gh_bench", "text", text, int(time.time()), channel="chat")
                started = time.perf_counter()
                reply = await dispatcher.handle_local(inbound)
                timings.append(time.perf_counter() - started)
                if reply.text and any(reply.text.startswith(n) for n in non_answers):
                    stuck.add(openid)
        rows = list(dispatcher.runner.db.query("SELECT openid, needed_human, handoff_reason FROM conversations"))
    human = [r for r in rows if r["needed_human"]]
    reasons: dict[str, int] = {}
    for r in human:
        key = (r["handoff_reason"] or "").split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    resolved = len(rows) - len(human)
    return [
        f"conversations: {len(rows)} ({sum(len(m) for _, m in conversations)} messages) from bench/data/conversations.txt",
        f"bot resolution rate: {resolved / len(rows):.3f} ({resolved} of {len(rows)} closed without a human; target > 0.60)",
        f"conversations with a non-answer (don't know / clarify) among the bot's replies: {len(stuck)}",
        "handoffs by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])),
        latency_line("in-process reply latency (real Rasa + model)", timings),
    ]
