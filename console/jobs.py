"""What a running kefu does beside answering requests, and the shared state its views read.

The background jobs: the outbox, recovery of replies a crash interrupted, the timed pass (SLA timers,
unclaimed handoffs, the weekly report push, notifications), knowledge-base refreshes, and the wait for
a first sentiment model. They live in the console because the console owns the unclaimed-handoff
escalation and is the one package that may use both the bot (its service figures, its outbox) and
the reviews (timers, reports, notifications); ``server.py`` only starts and stops them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import aiohttp
from aiohttp import web

from bot import conversations as conv_store
from bot.dialogue import Dialogue
from bot.dispatch import Dispatcher, Responder
from bot.metrics import Metrics
from bot.notifiers import WeChatTemplateNotifier
from bot.orders import order_source
from bot.outbox import Outbox, WeChatAPI
from bot.views import RUNTIME, Runtime
from bot.wechat import WeChatConfig
from console.app import CONSOLE, Console, escalate_unclaimed, template_env
from console.live import LiveHub
from console.notifiers import ConsoleNotifier
from console.report_views import DASHBOARD, Dashboard
from console.review_views import REVIEWS, Reviews
from intents.client import NluClient
from kb.encoder import Encoder
from kb.hours import BusinessHours
from kb.search import KnowledgeBase, refresh_if_changed
from reviews.notify import NotificationSender, Notifier, WeComRobotNotifier
from reviews.reports import push_weekly_report
from reviews.sentiment import load_or_none
from reviews.workflow import SlaPolicy, fire_due_timers
from storage.db import DbRunner

logger = logging.getLogger(__name__)

WORKFLOW_INTERVAL = 5.0  # seconds between timed passes; every step keeps its state in the database
# How often a server without a sentiment model looks for one (the first run trains it after start-up).
SENTIMENT_POLL = 10.0


class JobSettings(Protocol):
    """The settings a running kefu's views and background jobs read."""

    @property
    def wechat_token(self) -> str: ...
    @property
    def wechat_appid(self) -> str: ...
    @property
    def wechat_secret(self) -> str: ...
    @property
    def wechat_aes_key(self) -> str: ...
    @property
    def wechat_mode(self) -> str: ...
    @property
    def wechat_format(self) -> str: ...
    @property
    def wechat_api_base(self) -> str: ...
    @property
    def wechat_template_id(self) -> str: ...
    @property
    def manager_openids(self) -> str: ...
    @property
    def wecom_webhook(self) -> str: ...
    @property
    def channels(self) -> list[str]: ...
    @property
    def inband_deadline(self) -> float: ...
    @property
    def metrics_token(self) -> str: ...
    @property
    def orders_url(self) -> str: ...
    @property
    def orders_token(self) -> str: ...
    @property
    def hours(self) -> BusinessHours: ...
    @property
    def handoff_wait(self) -> float: ...
    @property
    def reviews_token(self) -> str: ...
    @property
    def sla_policy(self) -> SlaPolicy: ...
    @property
    def sla_response(self) -> float: ...
    @property
    def sla_resolution(self) -> float: ...
    @property
    def report_push(self) -> str: ...
    @property
    def kb_refresh(self) -> float: ...
    def sentiment_paths(self, encoder_name: str) -> list[Path]: ...


@dataclass(frozen=True)
class WorkflowPass:
    """The timed work: SLA timers, unclaimed handoffs, the weekly report push, notifications."""

    console: Console
    sender: NotificationSender
    channels: list[str]
    report_push: str  # empty: no weekly push

    async def run_once(self) -> None:
        """One pass; every step keeps its state in the database."""
        now = self.console.clock()
        runner = self.console.runner
        await runner.run(fire_due_timers, now, self.channels)
        await escalate_unclaimed(self.console)
        if self.report_push:
            await runner.run(push_weekly_report, self.report_push, self.channels, now, conv_store.service_figures)
        while await self.sender.deliver_due():
            pass


WORKFLOW = web.AppKey("workflow", WorkflowPass)


async def every(interval: float, job: Callable[[], Awaitable[None]]) -> None:
    """Run ``job`` now and then every ``interval`` seconds, until cancelled."""
    while True:
        try:
            await job()
        except Exception:  # a background loop: log and try again next round; the work stays in the database
            logger.exception("background pass failed")
        await asyncio.sleep(interval)


async def refresh_kb(kb: KnowledgeBase, runner: DbRunner) -> None:
    """Reload the knowledge base when the catalogue or FAQ changed (``kefu kb import``, a console edit)."""
    if await refresh_if_changed(kb, runner):
        logger.info("knowledge base reloaded after a catalogue or FAQ change")


async def await_sentiment(reviews: Reviews, paths: list[Path], encoder: Encoder) -> None:
    """Load the sentiment model once it appears; from then on the review API tags and stores reviews."""
    while reviews.model is None:
        await asyncio.sleep(SENTIMENT_POLL)
        model = await asyncio.get_running_loop().run_in_executor(None, load_or_none, paths, encoder)
        if model is not None:
            reviews.model = model
            logger.info("sentiment model loaded: the review API accepts reviews")


@dataclass
class Jobs:
    """The background tasks of a running kefu, and what they finish before it stops."""

    outbox: Outbox
    dispatcher: Dispatcher
    workflow: WorkflowPass
    kb: KnowledgeBase
    kb_refresh: float
    reviews: Reviews
    sentiment_paths: list[Path]
    hub: LiveHub
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        """Start every loop."""
        runner = self.workflow.console.runner
        self.tasks = [
            asyncio.create_task(self.outbox.run_forever(), name="outbox"),
            asyncio.create_task(self.dispatcher.recover_forever(), name="recovery"),
            asyncio.create_task(every(WORKFLOW_INTERVAL, self.workflow.run_once), name="workflow"),
            asyncio.create_task(every(self.kb_refresh, partial(refresh_kb, self.kb, runner)), name="kb-refresh"),
        ]
        if self.reviews.model is None:
            waiting = await_sentiment(self.reviews, self.sentiment_paths, self.kb.encoder)
            self.tasks.append(asyncio.create_task(waiting, name="sentiment-wait"))

    async def stop(self) -> None:
        """Close the live pages, finish the replies under way and send what is due, then stop every loop."""
        await self.hub.close_all()
        await self.dispatcher.drain()
        await self.outbox.deliver_due()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.workflow.console.hashing.shutdown(wait=False)


async def install_jobs(
    app: web.Application,
    settings: JobSettings,
    *,
    runner: DbRunner,
    session: aiohttp.ClientSession,
    kb: KnowledgeBase,
    nlu: NluClient | None,
    responder: Responder | None,
    clock: Callable[[], float],
) -> Jobs:
    """Put the views' shared state on ``app`` (the WeChat endpoint's, the console's, the reviews' and the
    reports') and return the background jobs that go with it, not yet started."""
    encoder = kb.encoder
    sentiment = await asyncio.get_running_loop().run_in_executor(
        None, load_or_none, settings.sentiment_paths(encoder.name), encoder
    )
    if sentiment is None:
        logger.warning(
            "no sentiment model for %s yet (`make run` trains it in the background, `make setup` in the "
            "foreground): the review API answers 503 until it is there",
            encoder.name,
        )
    metrics, hub = Metrics(), LiveHub()
    api = WeChatAPI(
        session,
        runner,
        base_url=settings.wechat_api_base,
        appid=settings.wechat_appid,
        secret=settings.wechat_secret,
        clock=clock,
    )
    outbox = Outbox(runner, api, metrics, clock)
    if responder is None:
        orders = order_source(session, runner, settings.orders_url, settings.orders_token)
        responder = Dialogue(runner, nlu, kb, orders, settings.hours, clock, metrics, publish=hub.publish)
    dispatcher = Dispatcher(
        runner, responder, metrics, clock, sender=api, wake_outbox=outbox.wake.set, inband_deadline=settings.inband_deadline
    )
    wechat = WeChatConfig(
        token=settings.wechat_token,
        appid=settings.wechat_appid,
        aes_key=settings.wechat_aes_key,
        mode=settings.wechat_mode,
        fmt=settings.wechat_format,
    )
    app[RUNTIME] = Runtime(
        wechat=wechat, dispatcher=dispatcher, metrics=metrics, clock=clock, metrics_token=settings.metrics_token
    )
    console = Console(
        runner,
        kb,
        hub,
        clock,
        outbox.wake.set,
        template_env(),
        handoff_wait=settings.handoff_wait,
        notify_channels=tuple(settings.channels),
    )
    app[CONSOLE] = console
    app[REVIEWS] = reviews = Reviews(runner, sentiment, settings.sla_policy, settings.reviews_token, clock, outbox.wake.set)
    app[DASHBOARD] = Dashboard(runner, clock, settings.sla_response, settings.sla_resolution)
    notifiers: dict[str, Notifier] = {"console": ConsoleNotifier(hub)}
    if settings.wecom_webhook:
        notifiers["wecom"] = WeComRobotNotifier(session, settings.wecom_webhook)
    if settings.manager_openids:
        openids = [o.strip() for o in settings.manager_openids.split(",") if o.strip()]
        notifiers["wechat"] = WeChatTemplateNotifier(api, settings.wechat_template_id, openids)
    sender = NotificationSender(runner, notifiers, clock)
    app[WORKFLOW] = workflow = WorkflowPass(console, sender, settings.channels, settings.report_push)
    paths = settings.sentiment_paths(encoder.name)
    return Jobs(outbox, dispatcher, workflow, kb, settings.kb_refresh, reviews, paths, hub)
