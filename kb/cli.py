"""``kefu kb import|export|eval``: the catalogue, FAQ and orders as CSV files, and search quality."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Protocol

from kb.encoder import load_encoder
from kb.evaluate import EvalFileError, evaluate, format_report, read_questions
from kb.importer import KbImportError, embed_ahead, export_dir, import_dir
from kb.search import KnowledgeBase
from storage.db import OpenDatabase


class KbSettings(Protocol):
    """The settings the knowledge-base commands read."""

    @property
    def db(self) -> str: ...
    @property
    def embed_model(self) -> str: ...
    @property
    def embed_variant(self) -> str: ...


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], open_database: OpenDatabase) -> None:
    """Add ``kefu kb import``, ``export`` and ``eval``."""
    kb = commands.add_parser("kb", help="the knowledge base").add_subparsers(dest="kb_command", required=True)
    kb_import = kb.add_parser("import", help="upsert products.csv, faq.csv, orders.csv from a folder")
    kb_import.add_argument("folder", type=Path)
    kb_import.add_argument(
        "--no-embed", action="store_true", help="leave embedding the new texts to the running server (quicker here, slower there)"
    )
    kb_import.set_defaults(func=partial(import_folder, open_database=open_database))
    kb_export = kb.add_parser("export", help="write the three CSV files to a folder")
    kb_export.add_argument("folder", type=Path)
    kb_export.set_defaults(func=partial(export_folder, open_database=open_database))
    kb_eval = kb.add_parser("eval", help="top-1/top-3 on a question,expected CSV")
    kb_eval.add_argument("file", type=Path)
    kb_eval.set_defaults(func=partial(evaluate_search, open_database=open_database))


def import_folder(settings: KbSettings, args: argparse.Namespace, *, open_database: OpenDatabase) -> int:
    """Upsert the folder's CSV files, all or nothing, embedding the new texts first unless --no-embed."""
    with closing(open_database(settings.db)) as db:
        try:
            if not args.no_embed:
                # Embedding here, before the import commits, lets a running server swap the new
                # catalogue in within KEFU_KB_REFRESH seconds instead of embedding it itself.
                encoder = partial(load_encoder, settings.embed_model, settings.embed_variant)
                embed_ahead(db, args.folder, encoder, progress=_progress)
            summary = import_dir(db, args.folder)
        except KbImportError as exc:
            print("kefu: nothing imported from the files with errors:", file=sys.stderr)
            for error in exc.errors:
                print(f"  {error}", file=sys.stderr)
            return 1
    for line in summary.lines():
        print(line)
    return 0


def _progress(done: int, total: int) -> None:
    print(f"\rembedding new texts: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def export_folder(settings: KbSettings, args: argparse.Namespace, *, open_database: OpenDatabase) -> int:
    """Write products.csv, faq.csv and orders.csv to the folder."""
    with closing(open_database(settings.db)) as db:
        for path in export_dir(db, args.folder):
            print(f"wrote {path}")
    return 0


def evaluate_search(settings: KbSettings, args: argparse.Namespace, *, open_database: OpenDatabase) -> int:
    """Print top-1/top-3 of the knowledge-base search on a question,expected CSV."""
    logging.basicConfig(level=logging.WARNING)
    try:
        rows = read_questions(args.file)
    except (EvalFileError, OSError) as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    with closing(open_database(settings.db)) as db:
        kb = KnowledgeBase(load_encoder(settings.embed_model, settings.embed_variant))
        kb.load(db)
        print(format_report(evaluate(kb, rows)))
    return 0
