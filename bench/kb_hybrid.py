"""Hybrid retrieval tried against kefu's dense ranking: BM25 over jieba tokens added to the e5 cosine.

``python -m bench.kb_hybrid`` prints top-1 per shop (over the questions whose answer is an entry, not
``none``) for BM25 weights w, the weight each shop would get when the others choose it (leave one shop
out, best mean), and reciprocal-rank fusion. It is not part of kefu: it decided not to use BM25.
"""

from __future__ import annotations

import jieba
from rank_bm25 import BM25Okapi

from bench.common import demo_db, demo_kb, load_encoder, shops
from kb import store
from kb.evaluate import read_questions

WEIGHTS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08)
# Particles and question words carry no topic; single characters of these are dropped as tokens.
_FILLER = set("的了吗呢吧啊呀么是有在我你们这那个什么怎么多少还能可以请问一下")

Scores = dict[tuple[str, str], float]


def _tokens(text: str) -> list[str]:
    return [w for w in jieba.lcut_for_search(text.lower()) if w.strip() and not all(c in _FILLER for c in w)]


def _label(key: tuple[str, str]) -> str:
    return f"faq:{key[1]}" if key[0] == "faq" else f"sku:{key[1]}"


def shop_rows() -> dict[str, list[tuple[str, Scores, Scores]]]:
    """Per shop and question: the expected label, the dense scores per entry, the BM25 scores per entry."""
    encoder = load_encoder()
    out: dict[str, list[tuple[str, Scores, Scores]]] = {}
    for shop in shops():
        db = demo_db(shop=shop.folder)
        kb = demo_kb(db, encoder=encoder)
        docs = store.search_docs(kb.products.values(), kb.faqs.values())
        keys = [("product", d.ref.split(store.SPEC_SEP)[0]) if d.kind == "spec" else (d.kind, d.ref) for d in docs]
        bm25 = BM25Okapi([_tokens(d.text) for d in docs])
        rows = []
        for question, expected in read_questions(shop.questions):
            if expected == "none":
                continue
            dense, _ = kb.raw_scores(question)
            lexical: Scores = {}
            for key, score in zip(keys, bm25.get_scores(_tokens(question)), strict=True):
                lexical[key] = max(lexical.get(key, 0.0), float(score))
            rows.append((expected, dense, lexical))
        out[shop.name] = rows
        db.close()
    return out


def top1(rows: list[tuple[str, Scores, Scores]], weight: float) -> float:
    """Share of questions whose expected entry ranks first by cosine + weight x scaled BM25."""
    right = 0
    for expected, dense, lexical in rows:
        scale = max(lexical.values(), default=0.0) or 1.0
        best = max(dense, key=lambda k: dense[k] + weight * lexical.get(k, 0.0) / scale)
        right += _label(best) == expected
    return right / len(rows)


def rrf_top1(rows: list[tuple[str, Scores, Scores]], k: int = 60) -> float:
    """Reciprocal-rank fusion of the two rankings."""
    right = 0
    for expected, dense, lexical in rows:
        by_dense = {key: i for i, key in enumerate(sorted(dense, key=lambda x: -dense[x]))}
        by_lex = {key: i for i, key in enumerate(sorted(dense, key=lambda x: -lexical.get(x, 0.0)))}
        best = max(dense, key=lambda x: 1 / (k + by_dense[x]) + 1 / (k + by_lex[x]))
        right += _label(best) == expected
    return right / len(rows)


def main() -> None:
    rows = shop_rows()
    table = {w: {name: top1(r, w) for name, r in rows.items()} for w in WEIGHTS}
    for w, per_shop in table.items():
        print(f"w={w:.2f} " + " ".join(f"{name} {v:.3f}" for name, v in per_shop.items()))
    print("rrf    " + " ".join(f"{name} {rrf_top1(r):.3f}" for name, r in rows.items()))
    for name in rows:
        others = [n for n in rows if n != name]
        chosen = max(WEIGHTS, key=lambda w: sum(table[w][n] for n in others))
        print(f"leave {name} out: the others choose w={chosen:.2f}; {name} {table[0.0][name]:.3f} -> {table[chosen][name]:.3f}")


if __name__ == "__main__":
    main()
