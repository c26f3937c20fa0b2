"""The ONNX encoder: a real export of the real model folder, its vectors beside torch's, and the factory."""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import kb.onnx_export as onnx_export
from kb.encoder import DEFAULT_MODEL, Encoder, OnnxEncoder, SentenceTransformerEncoder, open_encoder
from kb.onnx_export import OnnxExportError, export, read_layout, read_stamp, variant_path

# The exporter's mechanics run on a tiny model of the same layout (the real tokenizer cut down to the
# test texts' pieces, a two-layer transformer of random weights): an export takes seconds, not the
# real model's 45. The real
# model's own export is checked against sentence-transformers by the exporter itself at setup
# (kb.onnx_export.check_agreement); the last tests read what it recorded.
pytestmark = pytest.mark.model  # the real model folder lends its tokenizer and layout; the last test reads its export

TEXTS = onnx_export.PROBE
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2}


@pytest.fixture(scope="module")
def source_model() -> Path:
    source = Path(os.environ.get("KEFU_EMBED_MODEL", DEFAULT_MODEL)).expanduser()
    if not (source / "modules.json").exists():
        pytest.fail(f"no sentence-transformers folder at {source}: `make setup` builds it")
    return source


def tiny_tokenizer(source: Path, folder: Path, texts: list[str]) -> int:
    """Write ``source``'s tokenizer cut down to the pieces it cuts ``texts`` into (the special
    tokens keep their ids, the mask comes last); return the vocabulary's size. A Unigram model
    over a subset of its pieces cuts those texts exactly as before (the same best path is still
    there), and it loads in milliseconds instead of the full 250,000-piece model's second."""
    from tokenizers import Tokenizer

    full = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = full["model"]["vocab"]
    specials = {t["id"]: t for t in full["added_tokens"]}
    cutter = Tokenizer.from_file(str(source / "tokenizer.json"))
    used = {i for encoding in cutter.encode_batch(texts) for i in encoding.ids}
    keep = sorted({i for i in specials if i < 4} | (used - set(specials)))
    kept = [vocab[i] for i in keep]
    new_id = {old: new for new, old in enumerate(keep)}
    for old, token in specials.items():
        if old not in new_id:  # <mask>, after the last piece
            new_id[old] = len(kept)
            kept.append(vocab[old])
        token["id"] = new_id[old]
    full["model"]["vocab"] = kept
    full["model"]["unk_id"] = new_id[full["model"]["unk_id"]]
    for special in full["post_processor"]["special_tokens"].values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    (folder / "tokenizer.json").write_text(json.dumps(full, ensure_ascii=False), encoding="utf-8")
    return len(kept)


def tiny_model(source: Path, folder: Path) -> Path:
    """A sentence-transformers folder named like ``source`` (the e5 prefix rule reads the name) with
    its layout, its tokenizer cut down to the test texts' pieces and a tiny transformer of seeded
    random weights."""
    import torch
    from transformers import AutoConfig, AutoModel

    folder.mkdir(parents=True)
    for name in ("tokenizer_config.json", "modules.json", "sentence_bert_config.json"):
        (folder / name).symlink_to((source / name).resolve())
    vocab_size = tiny_tokenizer(source, folder, [f"{prefix}{text}" for text in TEXTS for prefix in ("", "query: ")])
    (folder / "1_Pooling").mkdir()
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({**pooling, "word_embedding_dimension": TINY["hidden_size"]}))
    config = AutoConfig.from_pretrained(str(source))
    for key, value in {**TINY, "vocab_size": vocab_size}.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, source_model: Path) -> Path:
    return tiny_model(source_model, tmp_path_factory.mktemp("tiny") / source_model.name)


@pytest.fixture(scope="module")
def exported(tiny: Path) -> Path:
    """The tiny folder with a fresh export (checked against sentence-transformers as it is made)."""
    export(tiny)
    return tiny


@pytest.fixture(scope="module")
def fp32(exported: Path) -> OnnxEncoder:
    return OnnxEncoder(str(exported), "fp32", threads=2)


@pytest.fixture(scope="module")
def int8(exported: Path) -> OnnxEncoder:
    return OnnxEncoder(str(exported), "int8", threads=2)


@pytest.fixture(scope="module")
def torch_encoder(exported: Path) -> Encoder:
    """The reference: sentence-transformers itself on the same folder."""
    return SentenceTransformerEncoder(str(exported))


def _weight_bytes(path: Path) -> int:
    """The bytes of a graph's stored weights (a tiny model's file is mostly graph, not weights)."""
    import onnx

    return sum(len(tensor.raw_data) for tensor in onnx.load(str(path)).graph.initializer)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.sum(a * b, axis=1))


def test_export_writes_both_variants_with_a_stamp_and_skips_a_current_one(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = exported / onnx_export.SUBDIR
    stamp = json.loads((folder / onnx_export.STAMP).read_text())
    assert stamp["export_version"] == onnx_export.EXPORT_VERSION
    assert stamp["variants"] == {"fp32": "model.onnx", "int8": "model-int8.onnx"}
    assert _weight_bytes(folder / "model-int8.onnx") < _weight_bytes(folder / "model.onnx") / 3
    assert not [p.name for p in exported.iterdir() if p.name.startswith(".")]  # no temp folder left behind

    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert onnx_export.main([str(exported)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert export(exported) == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_an_export_of_another_version_is_stale(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_stamp(exported) is not None
    monkeypatch.setattr(onnx_export, "EXPORT_VERSION", "0-older")
    assert read_stamp(exported) is None
    assert variant_path(exported, "int8") is None


def test_only_mean_pooling_folders_are_exported(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(OnnxExportError, match="mean pooling"):
        read_layout(tmp_path)
    with pytest.raises(OnnxExportError, match="not a sentence-transformers folder"):
        read_layout(tmp_path / "nothing")


def test_onnx_vectors_agree_with_torch(torch_encoder: Encoder, fp32: OnnxEncoder, int8: OnnxEncoder, exported: Path) -> None:
    reference = torch_encoder.encode(TEXTS)
    for encoder in (fp32, int8):
        vectors = encoder.encode(TEXTS)
        assert vectors.shape == reference.shape and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(reference, fp32.encode(TEXTS)).min() >= onnx_export.AGREEMENT["fp32"]["min"]
    cosines = _cosines(reference, int8.encode(TEXTS))
    assert cosines.mean() >= onnx_export.AGREEMENT["int8"]["mean"]
    assert cosines.min() >= onnx_export.AGREEMENT["int8"]["min"]
    assert read_stamp(exported)["agreement"]["int8"]["min"] == pytest.approx(cosines.min(), abs=1e-4)  # type: ignore[index]


def test_names_tell_the_vectors_apart(torch_encoder: Encoder, fp32: OnnxEncoder, int8: OnnxEncoder, exported: Path) -> None:
    assert fp32.name.startswith(str(exported) + "#onnx-fp32")
    assert int8.name.startswith(str(exported) + "#onnx-int8")
    assert len({torch_encoder.name, fp32.name, int8.name}) == 3


def test_batches_sorted_by_length_give_each_text_its_own_vector(exported: Path) -> None:
    encoder = OnnxEncoder(str(exported), "fp32", threads=1, batch_size=3)  # several batches, mixed lengths
    texts = [*TEXTS, TEXTS[0]]
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert np.allclose(together[0], together[-1], atol=1e-6)
    assert np.allclose(encoder.encode(texts[::-1]), together[::-1], atol=1e-5)


def test_empty_input_gives_no_vectors(int8: OnnxEncoder) -> None:
    vectors = int8.encode([])
    assert vectors.shape == (0, int8.dimension) and vectors.dtype == np.float32


def test_concurrent_calls_get_their_own_vectors(int8: OnnxEncoder) -> None:
    rotations = [TEXTS[i:] + TEXTS[:i] for i in range(len(TEXTS))]
    jobs = rotations * 2
    expected = [int8.encode(job) for job in rotations] * 2  # each distinct job once, one at a time
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(int8.encode, jobs))
    for want, have in zip(expected, got, strict=True):
        assert np.allclose(want, have, atol=1e-5)


def test_open_encoder_prefers_a_current_export_and_falls_back_to_sentence_transformers(
    exported: Path, source_model: Path, tmp_path: Path
) -> None:
    assert isinstance(open_encoder(str(exported)), OnnxEncoder)
    chosen = open_encoder(str(exported), "fp32")
    assert isinstance(chosen, OnnxEncoder) and chosen.variant == "fp32"
    assert isinstance(open_encoder(str(exported), "torch"), SentenceTransformerEncoder)

    bare = tmp_path / source_model.name
    bare.mkdir()
    for item in exported.iterdir():
        if item.name != onnx_export.SUBDIR:
            (bare / item.name).symlink_to(item.resolve())
    fallback = open_encoder(str(bare))
    assert isinstance(fallback, SentenceTransformerEncoder)
    assert fallback.name == str(bare)
    assert fallback.encode(["发什么快递"]).shape == (1, TINY["hidden_size"])


def test_an_export_that_disagrees_is_removed_and_refused(exported: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / exported.name
    shutil.copytree(exported, copy, symlinks=True)
    measured = {"fp32": {"mean": 1.0, "min": 1.0}, "int8": {"mean": 0.97, "min": 0.95}}
    monkeypatch.setattr(onnx_export, "measure_agreement", lambda folder: measured)
    with pytest.raises(OnnxExportError, match="int8 mean"):
        onnx_export.check_agreement(copy)
    assert read_stamp(copy) is None and not (copy / onnx_export.SUBDIR).exists()
    assert isinstance(open_encoder(str(copy)), SentenceTransformerEncoder)


def test_an_unchecked_export_is_checked_not_redone(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = {"fp32": {"mean": 1.0, "min": 1.0}, "int8": {"mean": 0.996, "min": 0.99}}
    monkeypatch.setattr(onnx_export, "measure_agreement", lambda folder: measured)
    copy = tmp_path / exported.name
    shutil.copytree(exported, copy, symlinks=True)
    stamp_path = copy / onnx_export.SUBDIR / onnx_export.STAMP
    stamp = json.loads(stamp_path.read_text())
    del stamp["agreement"]  # as exports made before the check was written
    stamp_path.write_text(json.dumps(stamp))
    onnx_file = copy / onnx_export.SUBDIR / "model-int8.onnx"
    made = onnx_file.stat().st_mtime_ns
    assert onnx_export.main([str(copy)]) == 0
    assert "checked" in capsys.readouterr().out
    assert onnx_file.stat().st_mtime_ns == made
    assert json.loads(stamp_path.read_text())["agreement"] == measured


def test_the_real_models_export_was_checked(source_model: Path) -> None:
    """What `make setup` exported for the real model agreed with sentence-transformers when it was checked."""
    stamp = read_stamp(source_model)
    assert stamp is not None, "no current ONNX export of the real model: `make setup` makes it"
    for variant, limits in onnx_export.AGREEMENT.items():
        for key, least in limits.items():
            assert stamp["agreement"][variant][key] >= least
    assert isinstance(open_encoder(str(source_model)), OnnxEncoder)
