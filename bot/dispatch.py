"""From a stored inbound message to exactly one reply, in band or through the outbox."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot import store, texts
from bot.conversations import ConversationChangedError
from bot.metrics import Metrics
from bot.outbox import MessageSender, TransientSendError, WeChatAPIError
from bot.store import Understood
from bot.wechat import Inbound
from storage.db import DbRunner, Store

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Each re-run means another message of the same shopper was answered first: a shopper cannot send
# this many at once, so more would mean a bug (the message is then left for recovery).
MAX_RERUNS = 8


@dataclass(frozen=True)
class Reply:
    """What the bot answers, and what it understood (stored with the message).

    ``persist`` writes what the turn changed (the conversation) inside the transaction that stores
    the reply, so a message costs two write transactions: storing it, and storing its answer. If
    ``persist`` finds the conversation changed since the turn read it (ConversationChangedError),
    nothing is stored and the turn runs again.
    ``on_stored`` runs once that transaction has committed (live updates for the console).
    """

    text: str | None
    intent: str | None = None
    confidence: float | None = None
    understood: Understood | None = None
    persist: Callable[[Store], None] | None = None
    on_stored: Callable[[], None] | None = None


Responder = Callable[[Inbound], Awaitable[Reply]]


class NotStored(Exception):
    """The message could not be stored: WeChat must get an error so that it retries."""


# WeChat drops a passive reply after 5 s: whatever the deadline, an in-band reply is stored by 4.5 s,
# and half a second after the deadline when that is sooner.
INBAND_CAP = 4.5
STORE_MARGIN = 0.5


class Dispatcher:
    """Stores each message once, runs the responder, and answers within WeChat's deadline."""

    def __init__(
        self,
        runner: DbRunner,
        responder: Responder,
        metrics: Metrics,
        clock: Callable[[], float],
        *,
        sender: MessageSender | None = None,
        wake_outbox: Callable[[], None] = lambda: None,
        inband_deadline: float = 4.0,
        inband_limit: float | None = None,
        lease_seconds: float = 60.0,
    ) -> None:
        self.runner = runner
        self.responder = responder
        self.metrics = metrics
        self.clock = clock
        self.sender = sender
        self.wake_outbox = wake_outbox
        self.inband_deadline = inband_deadline  # the reply must be ready this long after the push arrived
        # ... and stored by then, or it goes through the outbox
        self.inband_limit = min(inband_deadline + STORE_MARGIN, INBAND_CAP) if inband_limit is None else inband_limit
        self.lease_seconds = lease_seconds
        self._background: set[asyncio.Future[Any]] = set()

    async def record(self, inbound: Inbound) -> int | None:
        """Store the message before anything else; None if it is a repeat."""
        message_id = await self.runner.run(
            store.record_inbound,
            dedup_key=inbound.dedup_key,
            channel=inbound.channel,
            openid=inbound.openid,
            kind=inbound.kind,
            text=inbound.text,
            payload=inbound.raw,
            now=self.clock(),
            lease_seconds=self.lease_seconds,
        )
        if message_id is None:
            self.metrics.duplicates.inc()
        else:
            self.metrics.messages_in.labels(kind=inbound.kind).inc()
        return message_id

    async def respond(self, inbound: Inbound) -> Reply:
        """Run the responder; any failure becomes an apology and a handoff, never silence."""
        try:
            return await self.responder(inbound)
        except Exception:  # the handler runner: log, apologise to the shopper, hand off
            logger.exception("responder failed for %s", inbound.dedup_key)
            self.metrics.errors.labels(kind="responder").inc()
            return Reply(texts.SORRY_HANDOFF, intent="error")

    async def handle(self, inbound: Inbound, arrived: float | None = None) -> str | None:
        """Answer a WeChat push: the reply text for in-band delivery, or None for "success".

        ``arrived`` is when the request reached us (WeChat's 5-second clock starts then, not when the
        message is stored). Raises NotStored if the message cannot be stored, so WeChat gets an error
        and retries. The work runs in its own task: a dropped connection cannot stop it half-way.
        """
        return await asyncio.shield(self._keep(self._handle(inbound, self.clock() if arrived is None else arrived)))

    async def _handle(self, inbound: Inbound, arrived: float) -> str | None:
        try:
            message_id = await self.record(inbound)
        except Exception as exc:  # whatever the database raised, the push must not be acknowledged
            self.metrics.errors.labels(kind="not_stored").inc()
            raise NotStored(str(exc)) from exc
        if message_id is None:
            return None
        task = asyncio.ensure_future(self.respond(inbound))
        remaining = arrived + self.inband_deadline - self.clock()
        try:
            if remaining <= 0:
                raise TimeoutError
            reply = await asyncio.wait_for(asyncio.shield(task), remaining)
        except TimeoutError:
            self._keep(self._finish_later(message_id, inbound, task))
            if self.sender is not None:
                self._keep(self._typing(inbound.openid))
            return None
        finished, reply = await self._finish(message_id, inbound, reply, inband_by=arrived + self.inband_limit)
        if finished is None or finished.outbound_id is None:
            return None
        if not finished.inband:
            # The database was too slow for WeChat's window: the outbox sends it instead.
            self.metrics.errors.labels(kind="inband_too_late").inc()
            self.wake_outbox()
            return None
        self.metrics.replies_out.labels(via="inband").inc()
        return reply.text

    async def handle_local(self, inbound: Inbound) -> Reply:
        """Answer without WeChat (``kefu chat``): store, respond, record the reply as delivered."""
        message_id = await self.record(inbound)
        reply = await self.respond(inbound)
        if message_id is not None:
            _, reply = await self._finish(message_id, inbound, reply, inband_by=float("inf"))
        return reply

    async def _finish(
        self, message_id: int, inbound: Inbound, reply: Reply, *, inband_by: float | None
    ) -> tuple[store.Finished | None, Reply]:
        """Store the reply with the turn's writes; returns what was stored and the reply it was."""
        reruns = 0
        while True:
            try:
                finished = await self.runner.run(
                    store.finish_message,
                    message_id,
                    openid=inbound.openid,
                    text=reply.text,
                    inband_by=inband_by,
                    clock=self.clock,
                    intent=reply.intent,
                    confidence=reply.confidence,
                    understood=reply.understood,
                    persist=reply.persist,
                )
            except ConversationChangedError:
                # Another message of this shopper was answered since this turn read the conversation.
                # Nothing of this turn was stored or sent: it runs again on the conversation as it is now.
                if reruns == MAX_RERUNS:
                    raise  # the message stays unanswered for recovery to answer (Dispatcher.recover)
                reruns += 1
                self.metrics.errors.labels(kind="turn_rerun").inc()
                reply = await self.respond(inbound)
                continue
            if finished is not None and reply.on_stored is not None:
                reply.on_stored()
            return finished, reply

    async def _finish_later(self, message_id: int, inbound: Inbound, task: asyncio.Future[Reply]) -> None:
        finished, _ = await self._finish(message_id, inbound, await task, inband_by=None)
        if finished is not None and finished.outbound_id is not None:
            self.wake_outbox()

    async def _typing(self, openid: str) -> None:
        assert self.sender is not None
        try:
            await self.sender.typing(openid, True)
        except (WeChatAPIError, TransientSendError) as exc:
            logger.info("typing indicator not shown to %s: %s", openid, exc)

    def _keep(self, coro: Awaitable[T]) -> asyncio.Future[T]:
        # Keep a reference so the task is not garbage-collected before it finishes.
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def recover(self) -> int:
        """Answer messages whose process died before replying; they go out through the outbox."""
        rows = await self.runner.run(store.claim_stale_messages, now=self.clock(), lease_seconds=self.lease_seconds)
        for row in rows:
            inbound = Inbound(
                dedup_key=row["dedup_key"],
                openid=row["openid"],
                account="",
                kind=row["kind"],
                text=row["text"] or "",
                created_at=int(row["received_at"]),
                raw=json.loads(row["payload"] or "{}"),
                channel=row["channel"],
            )
            logger.info("recovering unanswered message %s", row["id"])
            reply = await self.respond(inbound)
            await self._finish(row["id"], inbound, reply, inband_by=None)
        if rows:
            self.wake_outbox()
        return len(rows)

    async def drain(self) -> None:
        """Wait for replies still being prepared (on shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def recover_forever(self, interval: float = 10.0) -> None:
        """Look for abandoned messages every ``interval`` seconds."""
        while True:
            try:
                await self.recover()
            except Exception:  # keep recovering; a failed pass leaves the rows for the next
                logger.exception("recovery pass failed")
            await asyncio.sleep(interval)
