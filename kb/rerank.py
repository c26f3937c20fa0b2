"""The learned reranker: how kefu orders search candidates and decides whether to answer.

Dense search (e5 cosine) proposes the closest entries; this linear model reorders them by features
that mean the same in every shop: how close the question is to the entry's title (FAQ question,
product name) and to its body (answer, spec lines), how many of the question's character pairs the
entry contains, whether the question names the product (by the shop's own names and aliases), and
whether the question is worded like a product question or like an FAQ question (a logistic model
over the question's embedding). A second small model turns the top candidate's score, its cosine
and its lead over the runner-up into the confidence that decides answer / clarify / don't know.

The weights are fitted by ``python -m bench.tune_kb`` on the dev questions of every dev shop
(leaving one shop out at a time to report what an unseen shop gets) and saved to ``rerank.json``.
They belong to the embedding model they were fitted with: a probe sentence's stored vector says
whether the running encoder is that model (`Reranker.fits`); with another model search falls back to
plain cosine ranking.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.encoder import Encoder

PATH = Path(__file__).resolve().parent / "rerank.json"

# Cosine features are scaled up so that their weights are on the scale of the others (cosines of
# e5 sit between about 0.75 and 0.95).
COSINE_SCALE = 20.0
FEATURES = (
    "cos",  # the entry's best cosine (scaled)
    "gap",  # the top candidate's best cosine minus this one's (scaled)
    "rank",  # 1 / (1 + position in the dense ranking)
    "cos_title",  # best cosine over the FAQ question and alternatives, or the product's names (scaled)
    "cos_body",  # best cosine over the FAQ question with its answer, or the product's spec lines (scaled)
    "cov",  # share of the question's character pairs found in the entry's texts
    "tcov",  # the same, in the title texts alone
    "bcov",  # cov - tcov
    "latm",  # share of the question's Latin/number tokens (model numbers) found in the entry's texts
    "isp",  # the entry is a product
    "faqsku",  # the entry is an FAQ about one product
    "named_self",  # a product the question names by a name or alias
    "faq_named",  # an FAQ about a product the question names
    "faq_other",  # an FAQ about another product than the one the question names
    "ptype",  # the question-wording model: P(product question) for a product, 1 - that for an FAQ
)
SCALED = frozenset({"cos", "gap", "cos_title", "cos_body"})
# What the confidence model reads: the top candidate's score, its cosine (scaled), its lead over the
# runner-up, whether the question names a make or thing nothing of the shop's speaks of
# (KnowledgeBase.unknown_names: "有没有安克的充电器"), and a model over the question's embedding of
# whether it is worded like what a shop has no answer for ("卖不卖手机", "能上门贴膜吗"). Left out of
# each dev shop in turn (bench.tune_kb, 2026-12-03) the last two raised the worst shop's top-1 from 0.870
# to 0.880 and the mean from 0.898 to 0.909 (place names aside: "到厦门要几天" is no make the shop
# lacks). Adding the product-wording value, whether it names a product and the top candidate's
# character-pair cover measured no better on any shop left out, so they stay out.
DECISION = ("top", "top_cos", "lead", "unsold", "none_wording")
CANDIDATES = 10  # the dense ranking's top entries that are reordered

_PAIR_DROP = re.compile(r"[\s，。？！、,.?!~～…]+")
LATIN = re.compile(r"[a-z0-9][a-z0-9\-]*")


def char_pairs(text: str) -> set[str]:
    """The text's adjacent character pairs (lower case, spaces and punctuation dropped)."""
    t = _PAIR_DROP.sub("", text.lower())
    return {t[i : i + 2] for i in range(len(t) - 1)}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


@dataclass(frozen=True)
class Reranker:
    """Fitted weights (see the module's docstring)."""

    weights: np.ndarray  # one per FEATURES entry
    decision: np.ndarray  # one per DECISION entry
    decision_bias: float
    wording: np.ndarray  # the question-wording model over the question's embedding
    wording_bias: float
    none_wording: np.ndarray  # the no-answer wording model over the question's embedding
    none_wording_bias: float
    probe: str
    probe_vector: np.ndarray
    fitted_on: str

    def fits(self, encoder: Encoder) -> bool:
        """Is ``encoder`` the model these weights were fitted with? (blocking: one encode)"""
        vector = encoder.encode([self.probe])[0]
        return vector.shape == self.probe_vector.shape and float(vector @ self.probe_vector) >= 0.98

    def product_wording(self, query: np.ndarray) -> float:
        """P(the question asks about a product rather than what an FAQ answers), from its wording."""
        return _sigmoid(float(self.wording @ query) + self.wording_bias)

    def no_answer_wording(self, query: np.ndarray) -> float:
        """P(the question is worded like one the shop has no answer for), from its wording."""
        return _sigmoid(float(self.none_wording @ query) + self.none_wording_bias)

    def score(self, features: dict[str, float]) -> float:
        """The candidate's ranking score."""
        return float(
            sum(
                w * features[name] * (COSINE_SCALE if name in SCALED else 1.0)
                for name, w in zip(FEATURES, self.weights, strict=True)
            )
        )

    def confidence(self, values: np.ndarray) -> float:
        """P(the top candidate is the answer and the question has one), from `decision_values`."""
        return _sigmoid(float(self.decision @ values) + self.decision_bias)

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "decision_features": list(DECISION),
            "weights": [round(float(w), 6) for w in self.weights],
            "decision": [round(float(w), 6) for w in self.decision],
            "decision_bias": round(self.decision_bias, 6),
            "wording": [round(float(w), 6) for w in self.wording],
            "wording_bias": round(self.wording_bias, 6),
            "none_wording": [round(float(w), 6) for w in self.none_wording],
            "none_wording_bias": round(self.none_wording_bias, 6),
            "probe": self.probe,
            "probe_vector": [round(float(v), 6) for v in self.probe_vector],
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reranker:
        if tuple(data["features"]) != FEATURES:
            raise ValueError(f"rerank weights are for the features {data['features']}, this kefu computes {list(FEATURES)}")
        if tuple(data["decision_features"]) != DECISION:
            raise ValueError(f"the confidence model is for {data['decision_features']}, this kefu computes {list(DECISION)}")
        return cls(
            weights=np.asarray(data["weights"], dtype=np.float64),
            decision=np.asarray(data["decision"], dtype=np.float64),
            decision_bias=float(data["decision_bias"]),
            wording=np.asarray(data["wording"], dtype=np.float32),
            wording_bias=float(data["wording_bias"]),
            none_wording=np.asarray(data["none_wording"], dtype=np.float32),
            none_wording_bias=float(data["none_wording_bias"]),
            probe=str(data["probe"]),
            probe_vector=np.asarray(data["probe_vector"], dtype=np.float32),
            fitted_on=str(data["fitted_on"]),
        )


def decision_values(top: float, top_cosine: float, second: float | None, unsold: bool, no_answer: float) -> np.ndarray:
    """The confidence model's inputs (DECISION) for a ranking whose first candidate scored ``top``."""
    lead = top - second if second is not None else 0.0
    return np.array([top, COSINE_SCALE * top_cosine, lead, float(unsold), no_answer])


def load(path: Path = PATH) -> Reranker | None:
    """The shipped weights, or None when there are none."""
    if not path.exists():
        return None
    return Reranker.from_json(json.loads(path.read_text(encoding="utf-8")))


def save(reranker: Reranker, path: Path = PATH) -> None:
    path.write_text(json.dumps(reranker.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
