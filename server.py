"""kefu's entry point: settings, the aiohttp application, and the ``kefu`` command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot import store as bot_store
from bot import texts
from bot.dispatch import Dispatcher, Reply, Responder
from bot.metrics import Metrics
from bot.outbox import Outbox, WeChatAPI
from bot.views import RUNTIME, Runtime, add_routes
from bot.wechat import FORMATS, MODES, Inbound, WeChatConfig
from kb.db import DbRunner, open_db

logger = logging.getLogger("kefu")

MAX_BODY = 1024 * 1024  # WeChat pushes are a few KB; anything over 1 MB is refused with 413


def _setting(env: str, default: Any, help: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting, read once from the environment (see the README's table)."""

    wechat_token: str = _setting("KEFU_WECHAT_TOKEN", "kefu-dev-token", "Token set in the WeChat console (signs every push)")
    wechat_appid: str = _setting("KEFU_WECHAT_APPID", "wx0000000000000000", "AppID of the official account or mini-program")
    wechat_secret: str = _setting("KEFU_WECHAT_SECRET", "", "AppSecret, used to fetch the access_token")
    wechat_aes_key: str = _setting(
        "KEFU_WECHAT_AES_KEY", "", "EncodingAESKey (43 characters) for compat and safe mode"
    )
    wechat_mode: str = _setting("KEFU_WECHAT_MODE", "plain", "Message encryption: plain, compat or safe")
    wechat_format: str = _setting("KEFU_WECHAT_FORMAT", "xml", "Push format chosen in the console: xml or json")
    wechat_api_base: str = _setting("KEFU_WECHAT_API_BASE", "https://api.weixin.qq.com", "WeChat API base URL")
    db: str = _setting("KEFU_DB", "var/kefu.db", "SQLite database file")
    host: str = _setting("KEFU_HOST", "127.0.0.1", "Address kefu serve listens on")
    port: int = _setting("KEFU_PORT", 8080, "Port kefu serve listens on")
    inband_deadline: float = _setting(
        "KEFU_INBAND_DEADLINE", 4.0, "Seconds to wait for a reply before answering WeChat 'success' and sending it later"
    )
    log_format: str = _setting("KEFU_LOG_FORMAT", "json", "Log lines as json or text")

    def __post_init__(self) -> None:
        if self.wechat_mode not in MODES:
            raise SettingsError(f"KEFU_WECHAT_MODE must be one of {', '.join(MODES)}")
        if self.wechat_format not in FORMATS:
            raise SettingsError(f"KEFU_WECHAT_FORMAT must be one of {', '.join(FORMATS)}")
        if self.wechat_mode != "plain" and len(self.wechat_aes_key) != 43:
            raise SettingsError("KEFU_WECHAT_AES_KEY must be the 43-character EncodingAESKey in compat and safe mode")


class SettingsError(ValueError):
    """A setting has a value kefu cannot run with."""


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Build settings from environment variables, then explicit overrides (command-line flags)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(f.metadata["env"])
        if raw is not None and raw != "":
            kind = type(f.default)
            try:
                values[f.name] = kind(raw)
            except ValueError as exc:
                raise SettingsError(f"{f.metadata['env']}: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def settings_table() -> str:
    """The README's configuration table, generated from the dataclass."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        lines.append(f"| `{f.metadata['env']}` | `{f.default}` | {f.metadata['help']} |")
    return "\n".join(lines)


async def welcome_responder(inbound: Inbound) -> Reply:
    """The fixed answer used until the dialogue is wired in."""
    return Reply(texts.WELCOME, intent="welcome")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(fmt: str) -> None:
    """Log to stderr, as JSON lines or plain text."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def make_app(
    settings: Settings,
    *,
    responder: Responder | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Build the application; resources open and close in cleanup contexts."""
    app = web.Application(client_max_size=MAX_BODY)
    metrics = Metrics()
    db = open_db(settings.db, [bot_store.migrations])
    runner = DbRunner(db)
    wechat = WeChatConfig(
        token=settings.wechat_token,
        appid=settings.wechat_appid,
        aes_key=settings.wechat_aes_key,
        mode=settings.wechat_mode,
        fmt=settings.wechat_format,
    )
    session_holder: dict[str, aiohttp.ClientSession] = {}

    async def resources(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        session_holder["session"] = session
        api = WeChatAPI(
            session,
            runner,
            base_url=settings.wechat_api_base,
            appid=settings.wechat_appid,
            secret=settings.wechat_secret,
            clock=clock,
        )
        outbox = Outbox(runner, api, metrics, clock)
        dispatcher = Dispatcher(
            runner,
            responder or welcome_responder,
            metrics,
            clock,
            sender=api,
            wake_outbox=outbox.wake.set,
            inband_deadline=settings.inband_deadline,
        )
        app[RUNTIME] = Runtime(wechat=wechat, dispatcher=dispatcher, metrics=metrics, clock=clock)
        tasks = [
            asyncio.create_task(outbox.run_forever(), name="outbox"),
            asyncio.create_task(dispatcher.recover_forever(), name="recovery"),
        ]
        yield
        await dispatcher.drain()
        await outbox.deliver_due()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
        runner.close()

    app.cleanup_ctx.append(resources)
    add_routes(app)
    return app


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    setup_logging(settings.log_format)
    logger.info("serving on http://%s:%s (db %s)", settings.host, settings.port, settings.db)
    web.run_app(make_app(settings), host=settings.host, port=settings.port, print=None)
    return 0


async def _chat(settings: Settings, openid: str) -> None:
    db = open_db(settings.db, [bot_store.migrations])
    runner = DbRunner(db)
    dispatcher = Dispatcher(runner, welcome_responder, Metrics(), time.time)
    interactive = sys.stdin.isatty()
    loop = asyncio.get_running_loop()
    count = 0
    try:
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
            inbound = Inbound(f"chat:{openid}:{time.time_ns()}:{count}", openid, "kefu-chat", "text", text, int(time.time()), channel="chat")
            reply = await dispatcher.handle_local(inbound)
            prefix = "客服: " if interactive else ""
            print(prefix + (reply.text or ""), flush=True)
    finally:
        runner.close()


def _cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_chat(settings, args.openid))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``kefu`` command line."""
    parser = argparse.ArgumentParser(prog="kefu", description="WeChat customer-service bot and review manager")
    parser.add_argument("--db", help="SQLite database file (overrides KEFU_DB)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the WeChat endpoint and the console")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=_cmd_serve)
    chat = sub.add_parser("chat", help="talk to the bot as a shopper, without WeChat")
    chat.add_argument("--openid", default="chat-user", help="the shopper identity to use")
    chat.set_defaults(func=_cmd_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a ``kefu`` command."""
    parser = build_parser()
    # --db is accepted before or after the sub-command
    args, rest = parser.parse_known_args(argv)
    if rest:
        extra = argparse.ArgumentParser(add_help=False)
        extra.add_argument("--db")
        more, unknown = extra.parse_known_args(rest)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.db = more.db or args.db
    try:
        settings = load_settings(
            os.environ, db=args.db, host=getattr(args, "host", None), port=getattr(args, "port", None)
        )
    except SettingsError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    Path(settings.db).parent.mkdir(parents=True, exist_ok=True)
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
