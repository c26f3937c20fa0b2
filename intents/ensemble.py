"""kefu's intent model: Rasa's ranking and the dense classifier, averaged, on normalised text.

Measured on real JD shopper messages (bench.intents_bench): Rasa alone, the dense classifier
alone and the average are printed side by side; the weight below is the one that measured best
across the real-message dev set and the written dev set together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from intents.classifier import EmbeddingClassifier
from intents.client import FALLBACK, OUT_OF_SCOPE, Entity, NluClient, Parse
from intents.normalise import Normalised, normalise

# Share of Rasa's probabilities in the average (the rest is the dense classifier's).
RASA_WEIGHT = 0.4
# Below this averaged confidence the verdict is nlu_fallback: the bot asks, searches or hands off.
FALLBACK_THRESHOLD = 0.25

Encode = Callable[[list[str]], np.ndarray]


def combine(rasa: Parse | None, dense: np.ndarray | None, labels: tuple[str, ...], rasa_weight: float) -> list[tuple[str, float]]:
    """The averaged ranking, best first; either side may be missing."""
    total = np.zeros(len(labels), dtype=np.float64)
    weight = 0.0
    if rasa is not None:
        index = {label: i for i, label in enumerate(labels)}
        side = np.zeros(len(labels), dtype=np.float64)
        for name, confidence in rasa.ranking:
            if name in index:  # Rasa's nlu_fallback is a verdict, not an intent
                side[index[name]] = confidence
        if side.sum() > 0:
            total += rasa_weight * side / side.sum()
            weight += rasa_weight
    if dense is not None:
        total += (1.0 - rasa_weight) * dense
        weight += 1.0 - rasa_weight
    if weight > 0:
        total /= weight
    order = np.argsort(-total)
    return [(labels[i], float(total[i])) for i in order]


def with_pasted(entities: tuple[Entity, ...], norm: Normalised) -> tuple[Entity, ...]:
    """Rasa's entities plus the order ids and product ids the normaliser took out."""
    extra = [Entity("order_id", value, 0, 0) for value in norm.order_ids]
    extra += [Entity("product_id", value, 0, 0) for value in norm.product_ids]
    extra += [Entity("product", title, 0, 0) for title in norm.titles]
    known = {(e.name, e.value) for e in entities}
    return entities + tuple(e for e in extra if (e.name, e.value) not in known)


class EnsembleNlu:
    """Normalise, ask Rasa and the dense classifier at once, and average their rankings."""

    def __init__(
        self,
        rasa: NluClient,
        classifier: EmbeddingClassifier,
        encode: Encode,
        *,
        rasa_weight: float = RASA_WEIGHT,
        threshold: float = FALLBACK_THRESHOLD,
    ) -> None:
        self.rasa = rasa
        self.classifier = classifier
        self.encode = encode
        self.rasa_weight = rasa_weight
        self.threshold = threshold

    async def _dense(self, text: str) -> np.ndarray:
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(None, self.encode, [text])
        return np.asarray(self.classifier.proba(vectors)[0])

    async def parse(self, text: str) -> Parse:
        """Classify ``text``; raises NluUnavailableError when Rasa cannot be reached."""
        norm = normalise(text)
        if not norm.text:
            # A pasted card or link alone asks nothing yet.
            return Parse(text, OUT_OF_SCOPE, 1.0, ((OUT_OF_SCOPE, 1.0),), with_pasted((), norm))
        known = self.classifier.memory.get(norm.text)
        if known is not None:
            # An agent already said what this message means (kefu train put it here).
            return Parse(text, known, 1.0, ((known, 1.0),), with_pasted((), norm))
        rasa, dense = await asyncio.gather(self.rasa.parse(norm.text), self._dense(norm.text))
        ranking = combine(rasa, dense, self.classifier.labels, self.rasa_weight)
        intent, confidence = ranking[0] if ranking else (FALLBACK, 0.0)
        if confidence < self.threshold:
            intent = FALLBACK
        return Parse(text, intent, confidence, tuple(ranking), with_pasted(rasa.entities, norm))
