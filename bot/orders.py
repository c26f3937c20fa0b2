"""Where order data comes from: the SQLite store by default, or the shop's own backend over HTTP."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import aiohttp

from kb import store as kb_store
from kb.store import Order
from storage.db import DbRunner

logger = logging.getLogger(__name__)


class OrderSourceError(Exception):
    """The order backend could not be reached or answered nonsense."""


class OrderSource(Protocol):
    """A shopper's own orders; implementations must never return another shopper's order."""

    async def orders_of(self, openid: str) -> list[Order]: ...

    async def get_order(self, openid: str, order_id: str) -> Order | None: ...


class SqliteOrders:
    """Orders imported with ``kefu kb import``."""

    def __init__(self, runner: DbRunner) -> None:
        self.runner = runner

    async def orders_of(self, openid: str) -> list[Order]:
        """Newest first."""
        return await self.runner.run(kb_store.orders_of, openid)

    async def get_order(self, openid: str, order_id: str) -> Order | None:
        """Only if the order is this shopper's."""
        return await self.runner.run(kb_store.get_order, openid, order_id)


def _order_from_json(item: dict[str, Any]) -> Order:
    try:
        return Order(
            order_id=str(item["order_id"]),
            openid=str(item["openid"]),
            sku=str(item["sku"]),
            quantity=int(item.get("quantity", 1)),
            status=str(item["status"]),
            carrier=str(item.get("carrier") or ""),
            tracking_no=str(item.get("tracking_no") or ""),
            address=str(item.get("address") or ""),
            created_at=str(item.get("created_at") or ""),
            updated_at=str(item.get("updated_at") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise OrderSourceError(f"bad order record: {exc!r}") from exc


class HttpOrders:
    """A shop backend answering ``GET {url}/orders?openid=…`` with ``{"orders": [...]}`` (bearer token)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str, timeout: float = 3.0) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def orders_of(self, openid: str) -> list[Order]:
        """Newest first; records of other shoppers, should the backend send any, are dropped."""
        try:
            async with self.session.get(
                self.url + "/orders", params={"openid": openid}, headers=self.headers, timeout=self.timeout
            ) as resp:
                if resp.status != 200:
                    raise OrderSourceError(f"order backend answered HTTP {resp.status}")
                data = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OrderSourceError(f"order backend unreachable: {exc!r}") from exc
        orders = [_order_from_json(item) for item in (data.get("orders") or [])]
        foreign = [o for o in orders if o.openid != openid]
        if foreign:
            logger.error("order backend returned %d orders of other shoppers; dropped", len(foreign))
        return sorted((o for o in orders if o.openid == openid), key=lambda o: o.created_at, reverse=True)

    async def get_order(self, openid: str, order_id: str) -> Order | None:
        """Looked up among the shopper's own orders."""
        for order in await self.orders_of(openid):
            if order.order_id == order_id:
                return order
        return None


def order_source(session: aiohttp.ClientSession, runner: DbRunner, url: str, token: str) -> OrderSource:
    """The shop's backend at ``url`` when one is set (KEFU_ORDERS_URL), else the SQLite order store."""
    return HttpOrders(session, url, token) if url else SqliteOrders(runner)
