"""kefu's entry point: the aiohttp application and the ``kefu`` command line; the settings live in ``settings.py``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import aiohttp
import sqlite_utils
from aiohttp import web

from bot import cli as bot_cli
from bot import conversations as conv_store
from bot import store as bot_store
from bot.dialogue import Dialogue
from bot.dispatch import Dispatcher, Responder
from bot.metrics import Metrics
from bot.notifiers import WeChatTemplateNotifier
from bot.orders import HttpOrders, OrderSource, SqliteOrders
from bot.outbox import Outbox, WeChatAPI
from bot.security import TRUST_PROXY, security_headers
from bot.views import RUNTIME, Runtime, add_routes
from bot.wechat import WeChatConfig
from console import cli as console_cli
from console.app import CONSOLE, Console, add_console_routes, escalate_unclaimed, template_env
from console.live import LiveHub
from console.nlu_views import add_inbox_routes
from console.notifiers import ConsoleNotifier
from console.report_views import DASHBOARD, Dashboard, add_report_routes
from console.review_views import REVIEWS, Reviews, add_review_routes
from intents import cli as intents_cli
from intents import corrections as intent_corrections
from intents.classifier import ClassifierError, EmbeddingClassifier
from intents.client import NluClient, RasaClient
from intents.ensemble import EnsembleNlu
from intents.service import RasaService
from intents.training import classifier_path, model_path
from kb import cli as kb_cli
from kb import store as kb_store
from kb.encoder import CachedEncoder, Encoder, open_encoder
from kb.encoder import load_encoder as encoder_loader
from kb.search import KnowledgeBase, refresh_if_changed
from reviews import cli as reviews_cli
from reviews import store as review_store
from reviews.notify import NotificationSender, Notifier, WeComRobotNotifier
from reviews.reports import push_weekly_report
from reviews.sentiment import SentimentModel, load_or_none
from reviews.workflow import fire_due_timers
from settings import Settings, SettingsError, load_settings, settings_table
from storage.db import DbRunner, open_db

__all__ = ["MIGRATIONS", "Settings", "SettingsError", "load_settings", "main", "make_app", "open_database", "settings_table"]

logger = logging.getLogger("kefu")

MAX_BODY = 1024 * 1024  # WeChat pushes are a few KB; anything over 1 MB is refused with 413


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
    handler.setFormatter(
        JsonLogFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


MIGRATIONS = [bot_store.migrations, kb_store.migrations, review_store.migrations, intent_corrections.migrations]


def open_database(path: str) -> sqlite_utils.Database:
    """The database file with every package's migrations applied: what each command and the server open."""
    return open_db(path, MIGRATIONS)


class StartupError(Exception):
    """A service kefu needs could not be started."""


@dataclass
class Services:
    """What a running kefu holds open: database, NLU, knowledge base, HTTP session."""

    settings: Settings
    runner: DbRunner
    session: aiohttp.ClientSession
    nlu: NluClient | None
    kb: KnowledgeBase
    orders: OrderSource
    metrics: Metrics
    sentiment: SentimentModel | None
    hub: LiveHub
    rasa: RasaService | None = None


def load_encoder(settings: Settings, *, serving: bool = False) -> Encoder:
    """The encoder the settings name (blocking, a second or a few): ONNX when exported, else sentence-transformers."""
    # Serving, concurrent messages keep the cores busy: one thread per run measured better (python -m bench load).
    threads = (settings.embed_threads or None) if serving else None
    return CachedEncoder(open_encoder(settings.embed_model, settings.embed_variant, threads))


def _trained(own: Path, shipped: Path, corrections: int) -> Path:
    """The model trained with the shop's corrections, else the one trained on the shipped data alone."""
    if own.exists() or not shipped.exists():
        return own
    if corrections:
        logger.warning("the intent model has not learnt the shop's %d corrections yet: run `kefu train`", corrections)
    return shipped


async def start_intent_model(
    settings: Settings,
    session: aiohttp.ClientSession,
    encoder: Encoder,
    corrections: list[tuple[str, str]],
    *,
    timeout: float,
) -> tuple[RasaService | None, NluClient]:
    """Reach (or start) Rasa and put the dense classifier beside it when one is trained."""
    cache = Path(settings.cache)
    rasa: RasaService | None = None
    if settings.rasa_url:
        urls = [u.strip() for u in settings.rasa_url.split(",") if u.strip()]
        client: NluClient = RasaClient(session, urls, settings.rasa_token or None, timeout)
    else:
        model = _trained(model_path(cache, corrections), model_path(cache), len(corrections))
        if not model.exists():
            raise StartupError(f"no trained Rasa model at {model}: run `make setup` or `kefu train`")
        rasa = RasaService(settings.rasa_venv_path, model, log_path=Path(settings.db).parent / "rasa.log")
        await rasa.start()
        client = RasaClient(session, [rasa.url], rasa.token, timeout)
    dense_path = _trained(
        classifier_path(cache, encoder.name, corrections), classifier_path(cache, encoder.name), len(corrections)
    )
    try:
        dense = EmbeddingClassifier.load(dense_path, encoder.name)
    except ClassifierError as exc:
        logger.warning("Rasa alone classifies intents: %s (run `kefu train`)", exc)
        return rasa, client
    return rasa, EnsembleNlu(client, dense, encoder.encode)


async def open_services(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    nlu: NluClient | None = None,
    encoder: Encoder | None = None,
    start_rasa: bool = True,
) -> Services:
    """Open the database, load the knowledge base, and start or reach Rasa."""
    loop = asyncio.get_running_loop()
    runner = DbRunner(open_db(settings.db, MIGRATIONS))
    session = aiohttp.ClientSession()
    rasa: RasaService | None = None
    try:
        if encoder is None:
            encoder = await loop.run_in_executor(None, partial(load_encoder, settings, serving=True))
        kb = KnowledgeBase(encoder)
        await refresh_if_changed(kb, runner)
        if nlu is None and (settings.rasa_url or start_rasa):
            corrections = await runner.run(intent_corrections.training_pairs)
            rasa, nlu = await start_intent_model(settings, session, encoder, corrections, timeout=settings.rasa_timeout)
        orders: OrderSource = (
            HttpOrders(session, settings.orders_url, settings.orders_token) if settings.orders_url else SqliteOrders(runner)
        )
        sentiment = await loop.run_in_executor(None, load_or_none, settings.sentiment_paths(encoder.name), encoder)
        if sentiment is None:
            logger.warning(
                "no sentiment model for %s yet (`make run` trains it in the background, `make setup` in the "
                "foreground): the review API answers 503 until it is there",
                encoder.name,
            )
    except BaseException:
        if rasa:
            await rasa.stop()
        await session.close()
        runner.close()
        raise
    return Services(settings, runner, session, nlu, kb, orders, metrics or Metrics(), sentiment, LiveHub(), rasa)


# How often a server without a sentiment model looks for one (the first run trains it after start-up).
SENTIMENT_POLL = 10.0


async def await_sentiment(services: Services, reviews: Reviews) -> None:
    """Load the sentiment model once it appears; from then on the review API tags and stores reviews."""
    encoder = services.kb.encoder
    paths = services.settings.sentiment_paths(encoder.name)
    while reviews.model is None:
        await asyncio.sleep(SENTIMENT_POLL)
        model = await asyncio.get_running_loop().run_in_executor(None, load_or_none, paths, encoder)
        if model is not None:
            services.sentiment = reviews.model = model
            logger.info("sentiment model loaded: the review API accepts reviews")


async def close_services(services: Services) -> None:
    """Stop Rasa (if started here), close the HTTP session and the database."""
    if services.rasa:
        await services.rasa.stop()
    await services.session.close()
    services.runner.close()


def build_dialogue(services: Services, clock: Callable[[], float]) -> Dialogue:
    """The responder: Rasa intent, then the knowledge base and order store."""
    return Dialogue(
        services.runner,
        services.nlu,
        services.kb,
        services.orders,
        services.settings.hours,
        clock,
        services.metrics,
        publish=services.hub.publish,
    )


def make_app(
    settings: Settings,
    *,
    responder: Responder | None = None,
    nlu: NluClient | None = None,
    encoder: Encoder | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Build the application; resources open and close in one cleanup context."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[security_headers])
    app[TRUST_PROXY] = settings.trust_proxy
    metrics = Metrics()
    wechat = WeChatConfig(
        token=settings.wechat_token,
        appid=settings.wechat_appid,
        aes_key=settings.wechat_aes_key,
        mode=settings.wechat_mode,
        fmt=settings.wechat_format,
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        services = await open_services(settings, metrics=metrics, nlu=nlu, encoder=encoder, start_rasa=responder is None)
        api = WeChatAPI(
            services.session,
            services.runner,
            base_url=settings.wechat_api_base,
            appid=settings.wechat_appid,
            secret=settings.wechat_secret,
            clock=clock,
        )
        outbox = Outbox(services.runner, api, metrics, clock)
        dispatcher = Dispatcher(
            services.runner,
            responder or build_dialogue(services, clock),
            metrics,
            clock,
            sender=api,
            wake_outbox=outbox.wake.set,
            inband_deadline=settings.inband_deadline,
        )
        app[RUNTIME] = Runtime(
            wechat=wechat, dispatcher=dispatcher, metrics=metrics, clock=clock, metrics_token=settings.metrics_token
        )
        console = Console(
            services.runner,
            services.kb,
            services.hub,
            clock,
            outbox.wake.set,
            template_env(),
            handoff_wait=settings.handoff_wait,
            notify_channels=tuple(settings.channels),
        )
        app[CONSOLE] = console
        app[REVIEWS] = Reviews(
            services.runner, services.sentiment, settings.sla_policy, settings.reviews_token, clock, outbox.wake.set
        )
        app[DASHBOARD] = Dashboard(services.runner, clock, settings.sla_response, settings.sla_resolution)
        notifiers: dict[str, Notifier] = {"console": ConsoleNotifier(services.hub)}
        if settings.wecom_webhook:
            notifiers["wecom"] = WeComRobotNotifier(services.session, settings.wecom_webhook)
        if settings.manager_openids:
            openids = [o.strip() for o in settings.manager_openids.split(",") if o.strip()]
            notifiers["wechat"] = WeChatTemplateNotifier(api, settings.wechat_template_id, openids)
        sender = NotificationSender(services.runner, notifiers, clock)
        workflow = WorkflowPass(services, console, sender, settings)
        app[WORKFLOW] = workflow
        tasks = [
            asyncio.create_task(outbox.run_forever(), name="outbox"),
            asyncio.create_task(dispatcher.recover_forever(), name="recovery"),
            asyncio.create_task(_every(5.0, workflow.run_once), name="workflow"),
            asyncio.create_task(_every(settings.kb_refresh, partial(_refresh_kb, services)), name="kb-refresh"),
        ]
        if services.sentiment is None:
            tasks.append(asyncio.create_task(await_sentiment(services, app[REVIEWS]), name="sentiment-wait"))
        yield
        await services.hub.close_all()
        await dispatcher.drain()
        await outbox.deliver_due()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        console.hashing.shutdown(wait=False)
        await close_services(services)

    app.cleanup_ctx.append(resources)
    add_routes(app)
    add_console_routes(app)
    add_inbox_routes(app)
    add_review_routes(app)
    add_report_routes(app)
    return app


@dataclass(frozen=True)
class WorkflowPass:
    """The timed work: SLA timers, unclaimed handoffs, notifications."""

    services: Services
    console: Console
    sender: NotificationSender
    settings: Settings

    async def run_once(self) -> None:
        """One pass; every step keeps its state in the database."""
        now = self.console.clock()
        channels = self.settings.channels
        await self.services.runner.run(fire_due_timers, now, channels)
        await escalate_unclaimed(self.console)
        if self.settings.report_push:
            await self.services.runner.run(
                push_weekly_report, self.settings.report_push, channels, now, conv_store.service_figures
            )
        while await self.sender.deliver_due():
            pass


WORKFLOW = web.AppKey("workflow", WorkflowPass)


async def _refresh_kb(services: Services) -> None:
    if await refresh_if_changed(services.kb, services.runner):
        logger.info("knowledge base reloaded after a catalogue or FAQ change")


async def _every(interval: float, job: Callable[[], Awaitable[None]]) -> None:
    while True:
        try:
            await job()
        except Exception:  # a background loop: log and try again next round; the work stays in the database
            logger.exception("background pass failed")
        await asyncio.sleep(interval)


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """``kefu serve``: the WeChat endpoint and the console, logging to stderr as JSON lines or text."""
    setup_logging(settings.log_format)
    logger.info("serving on http://%s:%s (db %s)", settings.host, settings.port, settings.db)
    try:
        web.run_app(make_app(settings), host=settings.host, port=settings.port, print=None)
    except StartupError as exc:
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
    intents_cli.add_commands(commands, open_database, encoder_loader)
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
