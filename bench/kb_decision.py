"""Reranker variants tried against the shipped one (bench.tune_kb), each scored leaving one shop out.

``python -m bench.kb_decision`` prints, per variant, the top-1 of every dev shop when the models are fitted
on the other shops alone, the worst shop and the mean. The variants add to the confidence model whether the
top candidate is a product and the share of the question's Chinese words that none of the shop's texts
holds ("unknown words"; with or without the products' descriptions; less the everyday words the questions of other shops
hold; or each word weighted by how few other shops' questions hold it), read the top candidate's naming and kind
features, change its regularisation, or add a
BM25 score over jieba tokens to the ranking model's features. It is not part of kefu: it is the measurement
behind the README's 'tried and not kept'.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import jieba
import numpy as np
from rank_bm25 import BM25Okapi
from sklearn.linear_model import LogisticRegression

from bench import tune_kb
from bench.common import load_encoder
from kb.rerank import COSINE_SCALE, FEATURES

_PUNCTUATION = re.compile(r"^[\s，。？！、,.?!~～…]+$")
_CHINESE_WORD = re.compile(r"^[\u4e00-\u9fff]{2,}$")

# What the confidence model reads for one question, its ranked candidates and the shops whose questions may
# say which words are everyday shopper words (never the shop scored, nor the question's own shop).
Inputs = Callable[[tune_kb.Question, list[tuple[float, tune_kb.Candidate]], frozenset[str]], list[float]]


@dataclass
class Extra:
    """A question's values that the shipped models do not read."""

    unknown: float  # share of its Chinese words found in no text search reads
    unknown_all: float  # the same against those texts and every product's category, description and shipping
    bm25: dict[str, float]  # candidate label -> BM25 score / the best BM25 score of any entry
    words: list[str]  # its Chinese words
    vocabulary: str  # the texts search reads


def _tokens(text: str) -> list[str]:
    return [w.strip() for w in jieba.lcut(text.lower()) if w.strip() and not _PUNCTUATION.match(w)]


def _unknown(words: list[str], vocabulary: str) -> float:
    chinese = [w for w in words if _CHINESE_WORD.match(w)]
    return sum(1 for w in chinese if w not in vocabulary) / len(chinese) if chinese else 0.0


def extras(sets: list[tune_kb.ShopSet]) -> dict[int, Extra]:
    """Per question (by id) the values the variants read."""
    out: dict[int, Extra] = {}
    for s in sets:
        entries = s.kb._entries
        bm25 = BM25Okapi([_tokens(t) for t in entries.text])
        index = {f"{'faq' if kind == 'faq' else 'sku'}:{ref}": i for i, (kind, ref) in enumerate(entries.keys)}
        searched = " ".join(entries.text)
        everything = (
            searched + " " + " ".join(f"{p.category} {p.description} {p.shipping}".lower() for p in s.kb.products.values())
        )
        for q in s.train + s.test:
            words = _tokens(q.text)
            scores = bm25.get_scores(words) if words else np.zeros(len(entries.keys))
            top = float(scores.max()) or 1.0
            bm = {c.label: float(scores[index[c.label]]) / top for c in q.candidates}
            chinese = [w for w in words if _CHINESE_WORD.match(w)]
            out[id(q)] = Extra(_unknown(words, searched), _unknown(words, everything), bm, chinese, searched)
    return out


def question_words(sets: list[tune_kb.ShopSet], extra: dict[int, Extra]) -> dict[str, dict[str, int]]:
    """Per shop, each Chinese word of its training questions -> how many of them hold it."""
    out: dict[str, dict[str, int]] = {}
    for s in sets:
        counts: dict[str, int] = {}
        for q in s.train:
            for w in set(extra[id(q)].words):
                counts[w] = counts.get(w, 0) + 1
        out[s.name] = counts
    return out


def everyday_unknown(extra: Extra, by_shop: dict[str, dict[str, int]], others: frozenset[str], shops: int) -> float:
    """The unknown-word share when a word the questions of at least ``shops`` of ``others`` hold counts as known."""
    if not extra.words:
        return 0.0
    unknown = 0
    for w in extra.words:
        if w in extra.vocabulary:
            continue
        if sum(1 for o in others if w in by_shop[o]) >= shops:
            continue
        unknown += 1
    return unknown / len(extra.words)


def specific_unknown(extra: Extra, by_shop: dict[str, dict[str, int]], others: frozenset[str]) -> float:
    """The unknown words weighted by how specific they are: 1 - the share of ``others`` whose questions hold them."""
    if not extra.words:
        return 0.0
    weights = [1.0 - sum(1 for o in others if w in by_shop[o]) / len(others) for w in extra.words]
    unknown = sum(wt for w, wt in zip(extra.words, weights, strict=True) if w not in extra.vocabulary)
    return unknown / max(sum(weights), 1e-9)


def left_out(
    sets: list[tune_kb.ShopSet],
    extra: dict[int, Extra],
    inputs: Inputs,
    *,
    bm25: bool = False,
    c_decision: float = 1.0,
    misses: dict[str, tuple[int, int, int]] | None = None,
) -> dict[str, float]:
    """top-1 of every shop left out, the models fitted on the others (as bench.tune_kb, but the variant's inputs).

    ``misses`` receives per shop how many questions with no answer got one, how many whose top candidate
    was right were declined, and how many answerable ones had a wrong top candidate."""
    if misses is None:
        misses = {}

    def vector(q: tune_kb.Question, c: tune_kb.Candidate, wording: float) -> np.ndarray:
        v = tune_kb.vector(c, wording)
        return np.append(v, extra[id(q)].bm25[c.label]) if bm25 else v

    def ranked(q: tune_kb.Question, weights: np.ndarray, wording: float) -> list[tuple[float, tune_kb.Candidate]]:
        return sorted(((float(vector(q, c, wording) @ weights), c) for c in q.candidates), key=lambda sc: -sc[0])

    out = {}
    for s in sets:
        train = [o for o in sets if o is not s]
        rows = []  # each training question with its cross-fitted wording value and the shops beside its own
        every = frozenset(o.name for o in train)
        for t in train:
            w = tune_kb.fit_wording([q for o in train if o is not t for q in o.train])
            rows += [(q, tune_kb._wording(q, w), every - {t.name}) for q in t.train]
        xs, ys = [], []
        for q, p, _ in rows:
            labels = [c.label for c in q.candidates]
            if q.expected in labels:
                pos = vector(q, q.candidates[labels.index(q.expected)], p)
                for c in q.candidates:
                    if c.label != q.expected:
                        d = pos - vector(q, c, p)
                        xs += [d, -d]
                        ys += [1, 0]
        model = LogisticRegression(C=tune_kb.C_RANK, fit_intercept=False, max_iter=5000).fit(np.array(xs), ys)
        weights = model.coef_[0]
        dx, dy = [], []
        for q, p, others in rows:
            scored = ranked(q, weights, p)
            if q.expected == "none" or (scored and scored[0][1].label == q.expected):
                dx.append(inputs(q, scored, others))
                dy.append(int(q.expected != "none"))
        decision = LogisticRegression(C=c_decision, max_iter=5000).fit(np.array(dx), dy)
        wording = tune_kb.fit_wording([q for o in train for q in o.train])
        right = answered = declined = wrong = 0
        for q in s.test:
            scored = ranked(q, weights, tune_kb._wording(q, wording))
            answers = bool(scored) and decision.predict_proba(np.array([inputs(q, scored, every)]))[0, 1] >= 0.5
            got = scored[0][1].label if answers else "none"
            right += got == q.expected
            answered += q.expected == "none" and got != "none"
            declined += q.expected != "none" and got == "none" and bool(scored) and scored[0][1].label == q.expected
            wrong += q.expected != "none" and got != q.expected and not (bool(scored) and scored[0][1].label == q.expected)
        out[s.name] = right / len(s.test)
        misses[s.name] = (answered, declined, wrong)
    return out


def main() -> None:
    sets = tune_kb.load_sets(load_encoder())
    extra = extras(sets)

    def shipped(q: tune_kb.Question, scored: list[tuple[float, tune_kb.Candidate]], others: frozenset[str]) -> list[float]:
        lead = scored[0][0] - scored[1][0] if len(scored) > 1 else 0.0
        return [scored[0][0], COSINE_SCALE * scored[0][1].cosine, lead]

    def product(q: tune_kb.Question, scored: list[tuple[float, tune_kb.Candidate]], others: frozenset[str]) -> list[float]:
        return [*shipped(q, scored, others), float(scored[0][1].kind == "product")]

    def unknown(q: tune_kb.Question, scored: list[tuple[float, tune_kb.Candidate]], others: frozenset[str]) -> list[float]:
        return [*shipped(q, scored, others), extra[id(q)].unknown]

    def both(q: tune_kb.Question, scored: list[tuple[float, tune_kb.Candidate]], others: frozenset[str]) -> list[float]:
        return [*product(q, scored, others), extra[id(q)].unknown]

    def both_all(q: tune_kb.Question, scored: list[tuple[float, tune_kb.Candidate]], others: frozenset[str]) -> list[float]:
        return [*product(q, scored, others), extra[id(q)].unknown_all]

    by_shop = question_words(sets, extra)

    def everyday(shops: int, with_product: bool) -> Inputs:
        def inputs(q: tune_kb.Question, scored: list[tuple[float, tune_kb.Candidate]], others: frozenset[str]) -> list[float]:
            base = product(q, scored, others) if with_product else shipped(q, scored, others)
            return [*base, everyday_unknown(extra[id(q)], by_shop, others, shops)]

        return inputs

    def top_features(names: tuple[str, ...], shops: int) -> Inputs:
        """The shipped inputs, the top candidate's ranking features ``names`` and (shops > 0) the everyday-less share."""

        def inputs(q: tune_kb.Question, scored: list[tuple[float, tune_kb.Candidate]], others: frozenset[str]) -> list[float]:
            f = scored[0][1].features
            values = [*shipped(q, scored, others), *(float(f[n]) for n in names)]
            return [*values, everyday_unknown(extra[id(q)], by_shop, others, shops)] if shops else values

        return inputs

    def specific(with_product: bool) -> Inputs:
        def inputs(q: tune_kb.Question, scored: list[tuple[float, tune_kb.Candidate]], others: frozenset[str]) -> list[float]:
            base = product(q, scored, others) if with_product else shipped(q, scored, others)
            return [*base, specific_unknown(extra[id(q)], by_shop, others)]

        return inputs

    variants: list[tuple[str, Inputs, bool, float]] = [
        ("shipped", shipped, False, 1.0),
        ("+ top is a product", product, False, 1.0),
        ("+ unknown words", unknown, False, 1.0),
        ("+ top is a product + unknown words", both, False, 1.0),
        ("+ top is a product + unknown words, C=0.1", both, False, 0.1),
        ("+ top is a product + unknown words (with descriptions)", both_all, False, 1.0),
        ("+ unknown words less everyday ones (in the questions of 1 other shop)", everyday(1, False), False, 1.0),
        ("+ unknown words less everyday ones (of 2 other shops)", everyday(2, False), False, 1.0),
        ("+ top is a product + unknown words less everyday ones (of 1)", everyday(1, True), False, 1.0),
        ("+ top is a product + unknown words less everyday ones (of 2)", everyday(2, True), False, 1.0),
        ("+ unknown words less everyday ones (of 3 other shops)", everyday(3, False), False, 1.0),
        ("+ unknown words weighted by how specific they are", specific(False), False, 1.0),
        ("+ top named (named_self, faq_named)", top_features(("named_self", "faq_named"), 0), False, 1.0),
        ("+ top named + unknown words less everyday ones (of 2)", top_features(("named_self", "faq_named"), 2), False, 1.0),
        ("+ top kind (isp, faqsku)", top_features(("isp", "faqsku"), 0), False, 1.0),
        ("+ top kind (isp, faqsku) + unknown words less everyday ones (of 2)", top_features(("isp", "faqsku"), 2), False, 1.0),
        (
            "+ top kind and named + unknown words less everyday ones (of 2)",
            top_features(("isp", "faqsku", "named_self", "faq_named"), 2),
            False,
            1.0,
        ),
        ("+ top is a product + unknown words weighted by how specific", specific(True), False, 1.0),
        ("BM25 feature", shipped, True, 1.0),
        ("BM25 feature + top is a product + unknown words", both, True, 1.0),
    ]
    print(f"ranking features: {', '.join(FEATURES)}")
    chosen = sys.argv[1:]  # words of the variants to run (all of them by default)
    for name, inputs, bm25, c in variants:
        if chosen and name != "shipped" and not any(word in name for word in chosen):
            continue
        misses: dict[str, tuple[int, int, int]] = {}
        top1 = left_out(sets, extra, inputs, bm25=bm25, c_decision=c, misses=misses)
        shops = " ".join(f"{n}={v:.3f}" for n, v in top1.items())
        shops += " (answered/declined/wrong: " + " ".join(f"{n} {a}/{d}/{w}" for n, (a, d, w) in misses.items()) + ")"
        worst = min(top1, key=lambda n: top1[n])
        print(f"{name}: {shops} worst={worst} {top1[worst]:.3f} mean={np.mean(list(top1.values())):.3f}", flush=True)


if __name__ == "__main__":
    main()
