"""kefu's entry point: the aiohttp application, one cleanup context per resource, and ``main()``, which
assembles the packages' commands into the ``kefu`` command line. The settings live in ``settings.py``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from typing import TYPE_CHECKING

import aiohttp
import sqlite_utils
from aiohttp import web

from bot import cli as bot_cli
from bot import store as bot_store
from bot.dispatch import Responder
from bot.security import TRUST_PROXY, security_headers
from bot.views import add_routes
from console import cli as console_cli
from console import store as console_store
from console.app import add_console_routes
from console.jobs import install_jobs
from console.live import PgBus
from console.nlu_views import add_inbox_routes
from console.report_views import add_report_routes
from console.review_views import add_review_routes
from intents import cli as intents_cli
from intents import corrections as intent_corrections
from intents.client import NluClient
from intents.service import ModelMissingError, intent_model
from kb import cli as kb_cli
from kb import store as kb_store
from kb.encoder import Encoder, load_encoder
from kb.search import KnowledgeBase, refresh_if_changed
from reviews import cli as reviews_cli
from reviews import store as review_store
from settings import Settings, SettingsError, load_settings, settings_table
from storage import outbox as storage_outbox
from storage.db import DbRunner, is_postgres_url, open_db

if TYPE_CHECKING:
    from storage.pg import PgDatabase

__all__ = ["MIGRATIONS", "Settings", "SettingsError", "load_settings", "main", "make_app", "open_database", "settings_table"]

logger = logging.getLogger("kefu")

MAX_BODY = 1024 * 1024  # WeChat pushes are a few KB; anything over 1 MB is refused with 413
MIGRATIONS = [
    storage_outbox.migrations,
    bot_store.migrations,
    console_store.migrations,
    kb_store.migrations,
    review_store.migrations,
    intent_corrections.migrations,
]

RUNNER = web.AppKey("runner", DbRunner)
SESSION = web.AppKey("session", aiohttp.ClientSession)
KB = web.AppKey("kb", KnowledgeBase)
NLU: web.AppKey[NluClient | None] = web.AppKey("nlu")


def open_database(path: str) -> sqlite_utils.Database | PgDatabase:
    """The database (a SQLite file or a PostgreSQL URL) with every package's migrations applied: what
    each command and the server open."""
    return open_db(path, MIGRATIONS)


def make_app(
    settings: Settings,
    *,
    responder: Responder | None = None,
    nlu: NluClient | None = None,
    encoder: Encoder | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The application; its resources open in this order at start-up and close in reverse."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[security_headers])
    app[TRUST_PROXY] = settings.trust_proxy

    async def database(app: web.Application) -> AsyncIterator[None]:
        runner = DbRunner(open_database(settings.db), readers=settings.db_readers, writers=settings.db_writers)
        with closing(runner) as app[RUNNER]:
            yield

    async def http_session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as app[SESSION]:
            yield

    async def knowledge_base(app: web.Application) -> AsyncIterator[None]:
        loaded = encoder
        if loaded is None:
            # Serving, concurrent messages keep the cores busy: one thread per run measured better (python -m bench load).
            threads = settings.embed_threads or None
            loaded = await asyncio.to_thread(load_encoder, settings.embed_model, settings.embed_variant, threads)
        app[KB] = KnowledgeBase(loaded)
        await refresh_if_changed(app[KB], app[RUNNER])
        yield

    async def intent_models(app: web.Application) -> AsyncIterator[None]:
        if nlu is not None or (responder is not None and not settings.rasa_url):
            app[NLU] = nlu  # given, or not needed by the responder given
            yield
            return
        corrections = await app[RUNNER].run(intent_corrections.training_pairs)
        async with intent_model(settings, app[SESSION], app[KB].encoder, corrections, timeout=settings.rasa_timeout) as client:
            app[NLU] = client
            yield

    async def background_jobs(app: web.Application) -> AsyncIterator[None]:
        jobs = await install_jobs(
            app, settings, runner=app[RUNNER], session=app[SESSION], kb=app[KB], nlu=app[NLU], responder=responder, clock=clock
        )
        # Replicas on one PostgreSQL share console events through LISTEN/NOTIFY; one process keeps them in memory.
        bus = PgBus(settings.db, jobs.hub) if is_postgres_url(settings.db) else None
        if bus is not None:
            await bus.start()
        jobs.start()
        yield
        await jobs.stop()
        if bus is not None:
            await bus.close()

    app.cleanup_ctx.extend([database, http_session, knowledge_base, intent_models, background_jobs])
    add_routes(app)
    add_console_routes(app)
    add_inbox_routes(app)
    add_review_routes(app)
    add_report_routes(app)
    return app


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


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """``kefu serve``: the WeChat endpoint and the console, logging to stderr as JSON lines or text."""
    handler = logging.StreamHandler()
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler.setFormatter(JsonLogFormatter() if settings.log_format == "json" else plain)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logger.info("serving on http://%s:%s (db %s)", settings.host, settings.port, settings.db)
    try:
        web.run_app(make_app(settings), host=settings.host, port=settings.port, print=None)
    except ModelMissingError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``kefu`` command line: ``serve`` here, every other command from the package that owns it."""
    parser = argparse.ArgumentParser(prog="kefu", description="WeChat customer-service bot and review manager")
    parser.add_argument("--db", help="SQLite database file (overrides KEFU_DB)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve the WeChat endpoint and the console")
    serve_cmd.add_argument("--host")
    serve_cmd.add_argument("--port", type=int)
    serve_cmd.set_defaults(func=serve)
    bot_cli.add_commands(commands, open_database)
    intents_cli.add_commands(commands, open_database, load_encoder)
    kb_cli.add_commands(commands, open_database)
    reviews_cli.add_commands(commands, open_database)
    console_cli.add_commands(commands, open_database)
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
        settings = load_settings(os.environ, db=args.db, host=getattr(args, "host", None), port=getattr(args, "port", None))
    except SettingsError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
