"""The dialogue's router: handlers registered per intent on router objects, first match wins.

aiogram 3's ``Router`` is the model (https://docs.aiogram.dev/en/latest/dispatcher/router.html): each
topic module has its own ``router``, the main one includes them, and a turn goes to the first handler
registered for its intent, looking at a router's own handlers first and then at the routers it
includes, in the order they were included. A router's default takes every intent nobody before it
took. Middleware wraps the turn as aiogram's outer middlewares wrap a handler
(https://docs.aiogram.dev/en/latest/dispatcher/middlewares.html): it gets the next step and the
context, and may act before it, after it, or instead of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeAlias, TypeVar

from bot.dispatch import Reply

C = TypeVar("C")
Handler: TypeAlias = Callable[[C], Awaitable[Reply]]
Middleware: TypeAlias = Callable[[Handler[C], C], Awaitable[Reply]]


class Router(Generic[C]):
    """Handlers registered by intent (``@router.intent("ask_price")``), and the routers it includes."""

    def __init__(self, name: str, *, default: Handler[C] | None = None) -> None:
        self.name = name
        self.default = default
        self.parent: Router[C] | None = None
        self._routes: list[tuple[frozenset[str], Handler[C]]] = []
        self._included: list[Router[C]] = []

    def __repr__(self) -> str:
        return f"Router({self.name!r})"

    def intent(self, *intents: str) -> Callable[[Handler[C]], Handler[C]]:
        """Register the decorated handler for these intents."""
        if not intents:
            raise ValueError("a handler is registered for at least one intent (the default takes the rest)")

        def register(handler: Handler[C]) -> Handler[C]:
            self._routes.append((frozenset(intents), handler))
            return handler

        return register

    def include_router(self, router: Router[C]) -> Router[C]:
        """Ask ``router`` after this router's own handlers and the routers included before it."""
        if router.parent is not None:
            raise ValueError(f"{router!r} is already included in {router.parent!r}")
        ancestor: Router[C] | None = self
        while ancestor is not None:
            if ancestor is router:
                raise ValueError(f"including {router!r} in {self!r} would make a loop")
            ancestor = ancestor.parent
        router.parent = self
        self._included.append(router)
        return router

    def include_routers(self, *routers: Router[C]) -> None:
        """Include several routers, in this order."""
        for router in routers:
            self.include_router(router)

    @property
    def routers(self) -> Sequence[Router[C]]:
        """The routers included, in the order they are asked."""
        return tuple(self._included)

    def handler_for(self, intent: str) -> Handler[C] | None:
        """The first handler registered for ``intent`` here or in an included router, else the default."""
        for intents, handler in self._routes:
            if intent in intents:
                return handler
        for router in self._included:
            found = router.handler_for(intent)
            if found is not None:
                return found
        return self.default

    def intents(self) -> frozenset[str]:
        """Every intent a handler is registered for, here or in an included router."""
        own = frozenset().union(*(intents for intents, _ in self._routes))
        return own.union(*(router.intents() for router in self._included))


def chain(middlewares: Sequence[Middleware[C]], handler: Handler[C]) -> Handler[C]:
    """``handler`` wrapped in the middlewares, the first one outermost."""
    for middleware in reversed(middlewares):
        handler = _wrapped(middleware, handler)
    return handler


def _wrapped(middleware: Middleware[C], handler: Handler[C]) -> Handler[C]:
    async def step(context: C) -> Reply:
        return await middleware(handler, context)

    return step
