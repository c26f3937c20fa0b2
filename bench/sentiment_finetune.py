"""Fine-tune the e5-small encoder for sentiment on half of one corpus, test on the other half.

Evaluation only: asks whether fine-tuning (rather than kefu's frozen embeddings + regressions) would
reach the >= 0.93 target. The word-embedding matrix (250k x 384) stays frozen, which makes a step
on 2 CPU cores about 2 s; a mean-pooled linear head on top, AdamW with warm-up and linear decay.

    python -m bench.sentiment_finetune waimai_10k.csv --epochs 2 --max-tokens 64
"""

from __future__ import annotations

import argparse
import random
import time

from bench.reviews_bench import CORPORA, _load, _split, scores
from kb.encoder import DEFAULT_MODEL

BATCH = 32


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers import AutoModel, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", help="a file in shared/data/reviews")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    encoder = AutoModel.from_pretrained(args.model)
    encoder.embeddings.word_embeddings.requires_grad_(False)
    head = torch.nn.Linear(encoder.config.hidden_size, 2)
    train, test = _split(_load(args.corpus))
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": trainable, "lr": 5e-5}, {"params": head.parameters(), "lr": 1e-3}], weight_decay=0.01
    )
    steps = args.epochs * (len(train) // BATCH)
    warmup = 0.06 * steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / steps))

    def logits(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(
            ["query: " + t for t in texts], padding=True, truncation=True, max_length=args.max_tokens, return_tensors="pt"
        )
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return head((hidden * mask).sum(1) / mask.sum(1))  # type: ignore[no-any-return]

    print(f"{args.corpus}: {len(train)} to train on, {len(test)} to test (from {CORPORA})", flush=True)
    started = time.monotonic()
    for epoch in range(args.epochs):
        encoder.train()
        random.Random(epoch).shuffle(train)
        for i in range(0, len(train) - BATCH + 1, BATCH):
            rows = train[i : i + BATCH]
            target = torch.tensor([1 if label == "positive" else 0 for _, label in rows])
            loss = torch.nn.functional.cross_entropy(logits([t for t, _ in rows]), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        encoder.eval()
        probabilities: list[float] = []
        with torch.no_grad():
            for i in range(0, len(test), 64):
                probabilities += torch.softmax(logits([t for t, _ in test[i : i + 64]]), -1)[:, 1].tolist()
        report, binary = scores(test, probabilities)
        print(
            f"epoch {epoch + 1}: accuracy={report.accuracy:.3f} macro_f1={report.macro_f1:.3f} "
            f"neutral_rate={report.neutral_rate:.3f} n={report.n} (binary at 0.5: {binary:.3f}) "
            f"after {time.monotonic() - started:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
