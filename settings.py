"""kefu's settings: every one read once from the environment into a frozen dataclass, each with its
default and a one-line help (datasette's ``SETTINGS``); the README's table is generated from it.

Only the entry point (``server.py``) reads them; packages take the fields they use as parameters or
through a small ``Protocol`` of their own, so none of them imports this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.wechat import FORMATS, MODES
from intents.training import default_cache, default_rasa_venv
from kb.encoder import DEFAULT_MODEL, DEFAULT_VARIANT
from kb.hours import BusinessHours, HoursError
from reviews.reports import ScheduleError, parse_schedule
from reviews.sentiment import base_model_path
from reviews.workflow import SlaPolicy
from storage.db import files_folder


def _setting(env: str, default: Any, help: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting, read once from the environment (see the README's table)."""

    wechat_token: str = _setting("KEFU_WECHAT_TOKEN", "kefu-dev-token", "Token set in the WeChat console (signs every push)")
    wechat_appid: str = _setting("KEFU_WECHAT_APPID", "wx0000000000000000", "AppID of the official account or mini-program")
    wechat_secret: str = _setting("KEFU_WECHAT_SECRET", "", "AppSecret, used to fetch the access_token")
    wechat_aes_key: str = _setting("KEFU_WECHAT_AES_KEY", "", "EncodingAESKey (43 characters) for compat and safe mode")
    wechat_mode: str = _setting("KEFU_WECHAT_MODE", "plain", "Message encryption: plain, compat or safe")
    wechat_format: str = _setting("KEFU_WECHAT_FORMAT", "xml", "Push format chosen in the console: xml or json")
    wechat_api_base: str = _setting("KEFU_WECHAT_API_BASE", "https://api.weixin.qq.com", "WeChat API base URL")
    db: str = _setting(
        "KEFU_DB", "var/kefu.db", "SQLite database file, or a postgresql:// URL (user:password@host:port/database)"
    )
    db_readers: int = _setting(
        "KEFU_DB_READERS", 3, "Read connections for reports, exports and search loads, beside the writer (1-64)"
    )
    db_writers: int = _setting(
        "KEFU_DB_WRITERS", 4, "Writer connections per process on PostgreSQL (1-64; SQLite always has one writer)"
    )
    host: str = _setting("KEFU_HOST", "127.0.0.1", "Address kefu serve listens on")
    port: int = _setting("KEFU_PORT", 8080, "Port kefu serve listens on")
    inband_deadline: float = _setting(
        "KEFU_INBAND_DEADLINE",
        4.0,
        "Seconds to wait for a reply before answering WeChat 'success' and sending it later",
    )
    log_format: str = _setting("KEFU_LOG_FORMAT", "json", "Log lines as json or text")
    trust_proxy: bool = _setting(
        "KEFU_TRUST_PROXY",
        False,
        "Behind nginx or another proxy: take the client address and https from X-Forwarded-For / X-Forwarded-Proto",
    )
    metrics_token: str = _setting(
        "KEFU_METRICS_TOKEN", "", "Bearer token /metrics requires; empty: /metrics answers loopback clients only"
    )
    cache: str = _setting("KEFU_CACHE", str(default_cache()), "Folder of the Rasa venv and trained models built by setup")
    rasa_venv: str = _setting("KEFU_RASA_VENV", "", "Rasa's own Python 3.10 venv (default: the one setup builds in KEFU_CACHE)")
    rasa_url: str = _setting("KEFU_RASA_URL", "", "Comma-separated Rasa server URLs to use instead of starting one (round-robin)")
    rasa_token: str = _setting("KEFU_RASA_TOKEN", "", "Auth token of the Rasa servers in KEFU_RASA_URL")
    rasa_timeout: float = _setting("KEFU_RASA_TIMEOUT", 2.0, "Seconds to wait for Rasa before answering from the knowledge base")
    embed_model: str = _setting(
        "KEFU_EMBED_MODEL",
        DEFAULT_MODEL,
        "Any sentence-transformers model name or path (default: the offline e5-small folder)",
    )
    embed_variant: str = _setting(
        "KEFU_EMBED_VARIANT",
        DEFAULT_VARIANT,
        "int8 or fp32: the ONNX export setup makes of the model folder; torch: sentence-transformers itself",
    )
    embed_threads: int = _setting(
        "KEFU_EMBED_THREADS",
        1,
        "Threads of one ONNX encoder run while serving (messages run side by side; 0: one per core); batch commands use all",
    )
    orders_url: str = _setting("KEFU_ORDERS_URL", "", "Shop backend for orders (JSON over HTTP); empty: the SQLite order store")
    orders_token: str = _setting("KEFU_ORDERS_TOKEN", "", "Bearer token for KEFU_ORDERS_URL")
    agent_hours: str = _setting("KEFU_AGENT_HOURS", "mon-sun 09:00-22:00", "When human agents work (shop time, UTC+8)")
    holidays: str = _setting("KEFU_HOLIDAYS", "", "Comma-separated dates when no agent works, e.g. 2026-10-01")
    kb_refresh: float = _setting(
        "KEFU_KB_REFRESH", 5.0, "Seconds between checks for catalogue and FAQ changes (e.g. from kefu kb import)"
    )
    handoff_wait: float = _setting(
        "KEFU_HANDOFF_WAIT", 300.0, "Seconds a handed-off shopper may wait unclaimed before an apology and escalation"
    )
    reviews_token: str = _setting("KEFU_REVIEWS_TOKEN", "", "Bearer token for POST /api/reviews (empty: the API refuses all)")
    sentiment_model: str = _setting(
        "KEFU_SENTIMENT_MODEL",
        "",
        "Sentiment model file (default: the shop's own from `kefu reviews train`, else setup's)",
    )
    sla_response: float = _setting("KEFU_SLA_RESPONSE", 1800.0, "Seconds to the first response to a negative review")
    sla_resolution: float = _setting("KEFU_SLA_RESOLUTION", 86400.0, "Seconds to resolving a negative review")
    sla_hours: str = _setting(
        "KEFU_SLA_HOURS", "", "Count SLA time only in these hours (e.g. mon-fri 09:00-18:00); empty: around the clock"
    )
    notify_channels: str = _setting("KEFU_NOTIFY_CHANNELS", "console", "Where reminders and escalations go: console,wecom,wechat")
    wecom_webhook: str = _setting("KEFU_WECOM_WEBHOOK", "", "WeCom group-robot webhook URL (channel wecom)")
    manager_openids: str = _setting("KEFU_MANAGER_OPENIDS", "", "Managers' openids for WeChat template messages (channel wechat)")
    wechat_template_id: str = _setting("KEFU_WECHAT_TEMPLATE_ID", "", "Template id of the WeChat notification message")
    report_push: str = _setting(
        "KEFU_REPORT_PUSH",
        "mon 09:00",
        "When the weekly report summary goes to the notify channels (China time); empty: never",
    )

    def __post_init__(self) -> None:
        for env, count in (("KEFU_DB_READERS", self.db_readers), ("KEFU_DB_WRITERS", self.db_writers)):
            if not 1 <= count <= 64:
                raise SettingsError(f"{env} must be from 1 to 64, not {count}")
        if self.wechat_mode not in MODES:
            raise SettingsError(f"KEFU_WECHAT_MODE must be one of {', '.join(MODES)}")
        if self.embed_variant not in ("int8", "fp32", "torch"):
            raise SettingsError(f"KEFU_EMBED_VARIANT must be int8, fp32 or torch, not '{self.embed_variant}'")
        if self.wechat_format not in FORMATS:
            raise SettingsError(f"KEFU_WECHAT_FORMAT must be one of {', '.join(FORMATS)}")
        if self.wechat_mode != "plain" and len(self.wechat_aes_key) != 43:
            raise SettingsError("KEFU_WECHAT_AES_KEY must be the 43-character EncodingAESKey in compat and safe mode")
        try:
            BusinessHours.parse(self.agent_hours, self.holidays)
            if self.sla_hours:
                BusinessHours.parse(self.sla_hours, self.holidays)
        except HoursError as exc:
            raise SettingsError(str(exc)) from exc
        if self.report_push:
            try:
                parse_schedule(self.report_push)
            except ScheduleError as exc:
                raise SettingsError(f"KEFU_REPORT_PUSH: {exc}") from exc
        unknown = set(self.channels) - {"console", "wecom", "wechat"}
        if unknown:
            raise SettingsError(f"KEFU_NOTIFY_CHANNELS: unknown channel {', '.join(sorted(unknown))}")

    @property
    def rasa_venv_path(self) -> Path:
        """The Rasa venv to run."""
        return Path(self.rasa_venv) if self.rasa_venv else default_rasa_venv(Path(self.cache))

    @property
    def hours(self) -> BusinessHours:
        """Agents' working hours."""
        return BusinessHours.parse(self.agent_hours, self.holidays)

    @property
    def sla_policy(self) -> SlaPolicy:
        """Negative-review deadlines."""
        calendar = BusinessHours.parse(self.sla_hours, self.holidays) if self.sla_hours else None
        return SlaPolicy(first_response=self.sla_response, resolution=self.sla_resolution, calendar=calendar)

    @property
    def channels(self) -> list[str]:
        """Notification channels in use."""
        return [c.strip() for c in self.notify_channels.split(",") if c.strip()]

    @property
    def shop_sentiment_model(self) -> Path:
        """The shop's own sentiment model, where `kefu reviews train` saves it: the one named, else next to
        the database."""
        return (
            Path(self.sentiment_model) if self.sentiment_model else files_folder(self.db, Path(self.cache)) / "sentiment-shop.npz"
        )

    def sentiment_paths(self, encoder_name: str) -> list[Path]:
        """Where the sentiment model may be, in order: the one named, else the shop's own; then setup's
        for this encoder."""
        return [self.shop_sentiment_model, base_model_path(Path(self.cache), encoder_name)]


class SettingsError(ValueError):
    """A setting has a value kefu cannot run with."""


def _flag(raw: str) -> bool:
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"'{raw}' is not one of 1/0, true/false, yes/no, on/off")


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Build settings from environment variables, then explicit overrides (command-line flags)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(f.metadata["env"])
        # An empty string is a value for text settings (KEFU_REPORT_PUSH= turns the push off).
        if raw is not None and (raw != "" or isinstance(f.default, str)):
            kind: Callable[[str], Any] = _flag if isinstance(f.default, bool) else type(f.default)
            try:
                values[f.name] = kind(raw)
            except ValueError as exc:
                raise SettingsError(f"{f.metadata['env']}: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def settings_table() -> str:
    """The README's configuration table, generated from the dataclass."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        default = str(f.default).replace(str(Path.home()), "~") if f.default != "" else "(empty)"
        lines.append(f"| `{f.metadata['env']}` | `{default}` | {f.metadata['help']} |")
    return "\n".join(lines)
