"""Conversation correctness per shop: every turn's reply must carry the fact its pattern names.

Each dev shop's ``conversations.txt`` is replayed through the WeChat endpoint of a running
``kefu serve`` on that shop's own catalogue, FAQ and orders. A turn is right when the reply
matches its pattern (``*``: any reply); a conversation is right when all of its turns are.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import xmltodict

from bench.common import BenchContext, Served, push_xml, serve_shop, shops
from tests.pushes import signed_query

_msg_ids = itertools.count(30_000_000)


@dataclass(frozen=True)
class Script:
    """One conversation: the shopper and (message, pattern) turns."""

    openid: str
    turns: tuple[tuple[str, str], ...]


def read_scripts(path: Path) -> list[Script]:
    """Blocks of ``@ OPENID`` then ``message => pattern`` lines, separated by blank lines."""
    scripts = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
        if not lines or not lines[0].startswith("@"):
            continue
        turns = tuple(tuple(part.strip() for part in line.rsplit("=>", 1)) for line in lines[1:] if "=>" in line)
        scripts.append(Script(lines[0][1:].strip(), turns))  # type: ignore[arg-type]
    return scripts


async def say(http: aiohttp.ClientSession, served: Served, openid: str, text: str) -> str:
    """Send one push; the reply in band, or the one sent later through the customer-service API."""
    served.delivered[openid] = asyncio.Event()
    before = len(served.fake.sent)
    body = push_xml(openid, text, next(_msg_ids))
    async with http.post(served.url + "/wechat", params=signed_query(int(time.time())), data=body.encode()) as resp:
        answer = await resp.text()
    if answer and answer != "success":
        return str(xmltodict.parse(answer)["xml"].get("Content") or "")
    try:
        await asyncio.wait_for(served.delivered[openid].wait(), 8)
    except TimeoutError:
        return ""
    sent = [m for m in served.fake.sent[before:] if m["touser"] == openid]
    return str(sent[-1]["text"]["content"]) if sent else ""


def right(reply: str, pattern: str) -> bool:
    """Does the reply carry the fact?"""
    return bool(reply) if pattern == "*" else re.search(pattern, reply) is not None


async def run(ctx: BenchContext, verbose: bool = False) -> list[str]:
    """Turns and conversations right, per shop, and the worst shop."""
    lines = []
    worst: tuple[float, str] | None = None
    for shop in shops():
        if shop.conversations is None or not shop.conversations.exists():
            continue
        scripts = read_scripts(shop.conversations)
        turns_right = turns = convs_right = 0
        misses: list[str] = []
        async with (
            serve_shop(ctx, shop.folder, KEFU_AGENT_HOURS="mon-sun 00:00-23:59") as served,
            aiohttp.ClientSession() as http,
        ):
            for script in scripts:
                all_right = True
                for text, pattern in script.turns:
                    reply = await say(http, served, script.openid, text)
                    ok = right(reply, pattern)
                    turns += 1
                    turns_right += ok
                    all_right &= ok
                    if not ok:
                        misses.append(f"  miss {shop.name} {script.openid}: {text} => /{pattern}/ got: {reply[:80]!r}")
                convs_right += all_right
        turn_rate, conv_rate = turns_right / turns, convs_right / len(scripts)
        lines.append(
            f"conversations {shop.name}: turns right={turn_rate:.3f} ({turns_right}/{turns}), "
            f"conversations right throughout={conv_rate:.3f} ({convs_right}/{len(scripts)})"
        )
        if verbose:
            lines.extend(misses)
        if worst is None or turn_rate < worst[0]:
            worst = (turn_rate, shop.name)
    if worst:
        lines.append(f"conversations worst shop: {worst[1]} turns right={worst[0]:.3f}")
    return lines
