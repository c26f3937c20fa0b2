"""Rasa as its own process: started on loopback with an auth token, watched, restarted, stopped;
and the intent model kefu runs on it (``intent_model``): Rasa reached or started, the dense classifier beside it.

Rasa Open Source 3.6 needs Python 3.10 and pins that clash with ours, so it never shares
our venv (shared/notes/rasa.md). ``--enable-api`` also exposes model-replace endpoints,
hence loopback only and always a token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import aiohttp

from intents.classifier import ClassifierError, EmbeddingClassifier, Encoder
from intents.client import NluClient, RasaClient
from intents.ensemble import EnsembleNlu
from intents.training import classifier_path, model_path, rasa_executable
from storage.db import files_folder

logger = logging.getLogger(__name__)


class RasaStartError(Exception):
    """The Rasa server did not become ready."""


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RasaService:
    """One supervised ``rasa run --enable-api`` subprocess."""

    def __init__(self, rasa_venv: Path, model: Path, *, port: int | None = None, log_path: Path | None = None) -> None:
        self.rasa_venv = rasa_venv
        self.model = model
        self.port = port or free_port()
        self.token = secrets.token_urlsafe(24)
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://127.0.0.1:{self.port}"

    async def _spawn(self) -> None:
        cmd = [
            str(rasa_executable(self.rasa_venv)),
            "run",
            "--enable-api",
            "-m",
            str(self.model),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            # One argument: a random token may start with "-", which argparse would take for an option.
            f"--auth-token={self.token}",
        ]
        env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "ab")  # noqa: ASYNC230 - handed to the child process, opened once
        else:
            log = None
        try:
            self.process = await asyncio.create_subprocess_exec(
                *cmd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log or asyncio.subprocess.DEVNULL,
                stderr=log or asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            if log:
                log.close()

    async def wait_ready(self, timeout: float = 180.0) -> None:
        """Poll /status until the model is loaded, then warm it up with a first parse."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process is None or self.process.returncode is not None:
                    raise RasaStartError("Rasa exited while starting (see its log)")
                try:
                    async with session.get(self.url + "/status", params={"token": self.token}) as resp:
                        if resp.status == 200 and (await resp.json()).get("model_file"):
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
            else:
                raise RasaStartError(f"Rasa not ready after {timeout:.0f} s")
            # The first parse after start is slow (~0.7 s): pay it here, not on a shopper.
            async with session.post(self.url + "/model/parse", params={"token": self.token}, json={"text": "你好"}) as resp:
                await resp.read()

    async def start(self, timeout: float = 180.0) -> None:
        """Start Rasa, wait until it answers, and watch it from then on."""
        await self._spawn()
        await self.wait_ready(timeout)
        logger.info("Rasa ready at %s (model %s)", self.url, self.model.name)
        self._watch = asyncio.create_task(self._watchdog(), name="rasa-watchdog")

    async def _watchdog(self) -> None:
        delay = 1.0
        while not self._stopping:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            logger.error("Rasa exited with %s; restarting in %.0f s", code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
            try:
                await self._spawn()
                await self.wait_ready()
                self.restarts += 1
                delay = 1.0
                logger.info("Rasa restarted")
            except RasaStartError as exc:
                logger.error("Rasa restart failed: %s", exc)

    async def stop(self) -> None:
        """Stop the watchdog and the process (SIGTERM, then SIGKILL after 10 s)."""
        self._stopping = True
        if self._watch:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        proc = self.process
        if proc and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            except ProcessLookupError:
                pass


class ModelMissingError(Exception):
    """No trained Rasa model to start the server with."""


class RasaSettings(Protocol):
    """The settings that say where Rasa is: reached at ``rasa_url``, else started from the cache's model."""

    @property
    def cache(self) -> str: ...
    @property
    def rasa_url(self) -> str: ...
    @property
    def rasa_token(self) -> str: ...
    @property
    def rasa_venv_path(self) -> Path: ...
    @property
    def db(self) -> str: ...  # a started Rasa logs to rasa.log next to the database


def _trained(own: Path, shipped: Path, corrections: int) -> Path:
    """The model trained with the shop's corrections, else the one trained on the shipped data alone."""
    if own.exists() or not shipped.exists():
        return own
    if corrections:
        logger.warning("the intent model has not learnt the shop's %d corrections yet: run `kefu train`", corrections)
    return shipped


@asynccontextmanager
async def intent_model(
    settings: RasaSettings,
    session: aiohttp.ClientSession,
    encoder: Encoder,
    corrections: list[tuple[str, str]],
    *,
    timeout: float,
) -> AsyncIterator[NluClient]:
    """Reach (or start) Rasa and put the dense classifier beside it when one is trained; a Rasa started
    here stops on leaving."""
    cache = Path(settings.cache)
    rasa: RasaService | None = None
    try:
        if settings.rasa_url:
            urls = [u.strip() for u in settings.rasa_url.split(",") if u.strip()]
            client: NluClient = RasaClient(session, urls, settings.rasa_token or None, timeout)
        else:
            model = _trained(model_path(cache, corrections), model_path(cache), len(corrections))
            if not model.exists():
                raise ModelMissingError(f"no trained Rasa model at {model}: run `make setup` or `kefu train`")
            rasa = RasaService(settings.rasa_venv_path, model, log_path=files_folder(settings.db, cache) / "rasa.log")
            await rasa.start()
            client = RasaClient(session, [rasa.url], rasa.token, timeout)
        dense_path = _trained(
            classifier_path(cache, encoder.name, corrections), classifier_path(cache, encoder.name), len(corrections)
        )
        try:
            dense = EmbeddingClassifier.load(dense_path, encoder.name)
        except ClassifierError as exc:
            logger.warning("Rasa alone classifies intents: %s (run `kefu train`)", exc)
            nlu = client
        else:
            nlu = EnsembleNlu(client, dense, encoder.encode)
        yield nlu
    finally:
        if rasa:  # also one that failed to start: its process may still be running
            await rasa.stop()
