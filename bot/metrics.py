"""Prometheus metrics of one app instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    """Counters and histograms exposed at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages_in = Counter("kefu_messages_in", "Shopper messages received", ["kind"], registry=self.registry)
        self.duplicates = Counter("kefu_duplicate_pushes", "Pushes dropped as repeats (WeChat retries)", registry=self.registry)
        self.replies_out = Counter("kefu_replies_out", "Replies delivered", ["via"], registry=self.registry)
        self.reply_latency = Histogram(
            "kefu_reply_latency_seconds",
            "Time from receiving a message to its reply being ready",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 10, 15, 30),
            registry=self.registry,
        )
        self.errors = Counter("kefu_errors", "Errors by kind", ["kind"], registry=self.registry)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return bytes(generate_latest(self.registry))
