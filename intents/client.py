"""The HTTP client of Rasa's /model/parse, and the parse result kefu works with."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

logger = logging.getLogger(__name__)

FALLBACK = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"


class NluUnavailableError(Exception):
    """Rasa did not answer in time or answered with an error."""


@dataclass(frozen=True)
class Entity:
    """One extracted entity (product, order_id, quantity, size, color …)."""

    name: str
    value: str
    start: int
    end: int


@dataclass(frozen=True)
class Parse:
    """What the intent model understood of one message."""

    text: str
    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...] = ()
    entities: tuple[Entity, ...] = field(default_factory=tuple)

    def entity(self, name: str) -> str | None:
        """The first value of an entity, if extracted."""
        for entity in self.entities:
            if entity.name == name:
                return entity.value
        return None


class NluClient(Protocol):
    """Anything that classifies a shopper message."""

    async def parse(self, text: str) -> Parse: ...


# Rasa parses one request at a time: a long text would stall every shopper behind it. The dialogue
# already reads only a message's first 256 characters; this bounds any other caller too.
MAX_PARSE_CHARS = 1024


def parse_from_json(data: dict[str, Any]) -> Parse:
    """Build a Parse from Rasa's /model/parse answer."""
    intent = data.get("intent") or {}
    ranking = tuple(
        (str(item["name"]), float(item.get("confidence") or 0.0)) for item in data.get("intent_ranking") or [] if item.get("name")
    )
    seen: set[tuple[str, int, int]] = set()
    entities: list[Entity] = []
    # The regex extractor and DIET may both report an order number: keep one of each span.
    for item in data.get("entities") or []:
        key = (str(item.get("entity")), int(item.get("start", 0)), int(item.get("end", 0)))
        if key in seen:
            continue
        seen.add(key)
        entities.append(Entity(key[0], str(item.get("value", "")), key[1], key[2]))
    return Parse(
        text=str(data.get("text", "")),
        intent=str(intent.get("name") or FALLBACK),
        confidence=float(intent.get("confidence") or 0.0),
        ranking=ranking,
        entities=tuple(entities),
    )


class RasaClient:
    """Calls one or several Rasa servers (round-robin) with a timeout."""

    def __init__(self, session: aiohttp.ClientSession, urls: list[str], token: str | None, timeout: float = 2.0) -> None:
        if not urls:
            raise ValueError("at least one Rasa URL is needed")
        self.session = session
        self.urls = [u.rstrip("/") for u in urls]
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._next = itertools.cycle(range(len(self.urls)))

    async def parse(self, text: str) -> Parse:
        """Classify ``text``; raises NluUnavailableError when no server answers."""
        params = {"token": self.token} if self.token else {}
        last: Exception | None = None
        # Start at the next server in turn, then fail over through the others once each.
        start = next(self._next)
        for offset in range(len(self.urls)):
            url = self.urls[(start + offset) % len(self.urls)]
            try:
                async with self.session.post(
                    url + "/model/parse", params=params, json={"text": text[:MAX_PARSE_CHARS]}, timeout=self.timeout
                ) as resp:
                    if resp.status != 200:
                        raise NluUnavailableError(f"{url}: HTTP {resp.status}")
                    data = await resp.json()
                return parse_from_json(data)
            except (aiohttp.ClientError, TimeoutError, ValueError, NluUnavailableError) as exc:
                logger.warning("Rasa at %s failed: %r", url, exc)
                last = exc
        raise NluUnavailableError(str(last))
