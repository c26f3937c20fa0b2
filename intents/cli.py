"""``kefu train`` and ``kefu intents export|eval``: the intent models, the agents' corrections, and their accuracy."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Protocol

import aiohttp

from intents import corrections
from intents.classifier import Encoder
from intents.evaluate import EvalFileError, evaluate, format_report, read_labelled
from intents.service import ModelMissingError, RasaSettings, intent_model
from intents.training import TrainingError, train
from storage.db import DbRunner, OpenDatabase

# The shared sentence encoder a model name and variant load (kb.encoder.load_encoder; intents does not import kb).
LoadEncoder = Callable[[str, str], Encoder]


class IntentSettings(RasaSettings, Protocol):
    """The settings the intent commands read."""

    @property
    def embed_model(self) -> str: ...
    @property
    def embed_variant(self) -> str: ...


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], open_database: OpenDatabase, load_encoder: LoadEncoder
) -> None:
    """Add ``kefu train``, ``kefu intents eval`` and ``kefu intents export``."""
    train_cmd = commands.add_parser(
        "train", help="train the intent models on the shipped data and the agents' corrections (always, unless --if-changed)"
    )
    train_cmd.add_argument("--if-changed", action="store_true", help="only when the data or config changed")
    train_cmd.set_defaults(func=partial(train_models, open_database=open_database, load_encoder=load_encoder))
    intents = commands.add_parser("intents", help="the intent model").add_subparsers(dest="intents_command", required=True)
    ieval = intents.add_parser("eval", help="precision and recall on a text,intent CSV")
    ieval.add_argument("file", type=Path)
    ieval.set_defaults(func=partial(evaluate_intents, open_database=open_database, load_encoder=load_encoder))
    iexport = intents.add_parser("export", help="write the agents' intent corrections as a text,intent CSV")
    iexport.add_argument("--out", type=Path, required=True)
    iexport.set_defaults(func=partial(export_corrections, open_database=open_database))


def train_models(
    settings: IntentSettings, args: argparse.Namespace, *, open_database: OpenDatabase, load_encoder: LoadEncoder
) -> int:
    """Train Rasa and the dense classifier on the shipped data and the agents' corrections."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with closing(open_database(settings.db)) as db:
        pairs = corrections.training_pairs(db)
    print(f"training on the shipped data and {len(pairs)} corrections from {settings.db} …", flush=True)
    try:
        models = train(
            Path(settings.cache),
            settings.rasa_venv_path,
            encoder=load_encoder(settings.embed_model, settings.embed_variant),
            corrections=pairs,
            force=not args.if_changed,
        )
    except TrainingError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    print(f"model: {models.rasa}")
    print(f"dense classifier: {models.dense}")
    return 0


def export_corrections(settings: IntentSettings, args: argparse.Namespace, *, open_database: OpenDatabase) -> int:
    """Write the agents' corrections as a text,intent CSV."""
    with closing(open_database(settings.db)) as db:
        count = corrections.export_csv(db, args.out)
    print(f"{count} corrected messages written to {args.out}")
    return 0


def evaluate_intents(
    settings: IntentSettings, args: argparse.Namespace, *, open_database: OpenDatabase, load_encoder: LoadEncoder
) -> int:
    """Print precision and recall of the intent model kefu serves on a text,intent CSV."""
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(_evaluate_intents(settings, args.file, open_database, load_encoder))


async def _evaluate_intents(settings: IntentSettings, path: Path, open_database: OpenDatabase, load_encoder: LoadEncoder) -> int:
    try:
        rows = read_labelled(path)
    except (EvalFileError, OSError) as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    with closing(DbRunner(open_database(settings.db))) as runner:
        pairs = await runner.run(corrections.training_pairs)
    encoder = await asyncio.to_thread(load_encoder, settings.embed_model, settings.embed_variant)
    async with aiohttp.ClientSession() as session:
        try:
            async with intent_model(settings, session, encoder, pairs, timeout=10.0) as nlu:
                report = await evaluate(nlu, rows)
        except ModelMissingError as exc:
            print(f"kefu: {exc}", file=sys.stderr)
            return 1
    print(format_report(report))
    return 0
