"""The console's notification channel: a banner on every open page."""

from __future__ import annotations

from typing import Any

from console.live import LiveHub


class ConsoleNotifier:
    """A banner on every open console page."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    async def send(self, title: str, body: str, payload: dict[str, Any]) -> None:
        """Broadcast to the console."""
        self.hub.publish({"type": "case" if "case_id" in payload else "notification", "title": title, "body": body, **payload})
