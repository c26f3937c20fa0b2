"""``kefu chat``: talk to the bot as a shopper, without WeChat, through the dialogue ``kefu serve`` runs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from functools import partial
from typing import Protocol

import aiohttp

from bot.dialogue import Dialogue
from bot.dispatch import Dispatcher
from bot.metrics import Metrics
from bot.orders import order_source
from bot.wechat import Inbound
from intents import corrections
from intents.service import ModelMissingError, RasaSettings, intent_model
from kb.encoder import Encoder, load_encoder
from kb.hours import BusinessHours
from kb.search import KnowledgeBase, refresh_if_changed
from storage.db import DbRunner, OpenDatabase


class BotSettings(RasaSettings, Protocol):
    """The settings the bot reads when it runs without WeChat."""

    @property
    def embed_model(self) -> str: ...
    @property
    def embed_variant(self) -> str: ...
    @property
    def embed_threads(self) -> int: ...
    @property
    def rasa_timeout(self) -> float: ...
    @property
    def orders_url(self) -> str: ...
    @property
    def orders_token(self) -> str: ...
    @property
    def hours(self) -> BusinessHours: ...


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], open_database: OpenDatabase) -> None:
    """Add ``kefu chat``."""
    chat_cmd = commands.add_parser("chat", help="talk to the bot as a shopper, without WeChat")
    chat_cmd.add_argument("--openid", default="chat-user", help="the shopper identity to use")
    chat_cmd.set_defaults(func=partial(chat, open_database=open_database))


@asynccontextmanager
async def local_bot(
    settings: BotSettings, open_database: OpenDatabase, *, encoder: Encoder | None = None
) -> AsyncIterator[Dispatcher]:
    """The bot without WeChat: the database, the knowledge base, the intent model (Rasa reached or started),
    the order store and the dialogue, all closed on leaving."""
    with closing(DbRunner(open_database(settings.db))) as runner:
        async with aiohttp.ClientSession() as session:
            if encoder is None:
                threads = settings.embed_threads or None  # as kefu serve runs it
                encoder = await asyncio.to_thread(load_encoder, settings.embed_model, settings.embed_variant, threads)
            kb = KnowledgeBase(encoder)
            await refresh_if_changed(kb, runner)
            pairs = await runner.run(corrections.training_pairs)
            async with intent_model(settings, session, encoder, pairs, timeout=settings.rasa_timeout) as nlu:
                orders = order_source(session, runner, settings.orders_url, settings.orders_token)
                metrics = Metrics()
                dialogue = Dialogue(runner, nlu, kb, orders, settings.hours, time.time, metrics)
                yield Dispatcher(runner, dialogue, metrics, time.time)


def chat(settings: BotSettings, args: argparse.Namespace, *, open_database: OpenDatabase) -> int:
    """Answer each line on standard input as the bot would answer it on WeChat, one line per reply."""
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(_chat(settings, args.openid, open_database))


async def _chat(settings: BotSettings, openid: str, open_database: OpenDatabase) -> int:
    try:
        async with local_bot(settings, open_database) as dispatcher:
            await _converse(dispatcher, openid)
    except ModelMissingError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    return 0


async def _converse(dispatcher: Dispatcher, openid: str) -> None:
    interactive = sys.stdin.isatty()
    loop = asyncio.get_running_loop()
    count = 0
    if interactive:
        print("kefu chat：以顾客身份和客服机器人对话，Ctrl-D 退出。", flush=True)
    while True:
        if interactive:
            print("您: ", end="", flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        count += 1
        inbound = Inbound(
            f"chat:{openid}:{time.time_ns()}:{count}", openid, "kefu-chat", "text", text, int(time.time()), channel="chat"
        )
        reply = await dispatcher.handle_local(inbound)
        prefix = "客服: " if interactive else ""
        print(prefix + (reply.text or "（已转人工，请稍候）"), flush=True)
