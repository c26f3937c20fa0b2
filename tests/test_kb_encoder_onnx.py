"""The ONNX encoder: a real export of the real model folder, its vectors beside torch's, and the factory."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import kb.onnx_export as onnx_export
from kb.encoder import DEFAULT_MODEL, Encoder, OnnxEncoder, SentenceTransformerEncoder, open_encoder
from kb.onnx_export import OnnxExportError, export, read_layout, read_stamp, variant_path

pytestmark = pytest.mark.model

TEXTS = [
    "面膜孕妇能用吗",
    "发什么快递",
    "你好，我昨天下的单，订单号 2025112412345678，现在还没发货，能帮我催一下吗？谢谢",
    "婴儿推车能上飞机吗",
    "现货商品付款后48小时内发货，每天16:00前付款的订单当天发出；预售商品按商品页写明的日期发货。",
    "Is this hair dryer 220V?",
    "😡😡😡 太差了",
    "好",
    # Longer than the folder's 256 tokens: truncated the way sentence-transformers truncates.
    "这款电饭煲做出来的米饭非常香，内胆不粘，清洗也方便。" * 20,
]


def _link_copy(source: Path, folder: Path) -> None:
    """A folder of links to the model's files: the real weights, without touching the real folder."""
    folder.mkdir(parents=True)
    for item in source.iterdir():
        if item.name != onnx_export.SUBDIR and not item.name.startswith("."):
            (folder / item.name).symlink_to(item.resolve())


@pytest.fixture(scope="module")
def source_model() -> Path:
    source = Path(os.environ.get("KEFU_EMBED_MODEL", DEFAULT_MODEL)).expanduser()
    if not (source / "modules.json").exists():
        pytest.fail(f"no sentence-transformers folder at {source}: `make setup` builds it")
    return source


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, source_model: Path) -> Iterator[Path]:
    """A copy of the model folder (same name: the e5 prefix rule reads it) with a fresh export."""
    folder = tmp_path_factory.mktemp("model") / source_model.name
    _link_copy(source_model, folder)
    export(folder)
    yield folder
    shutil.rmtree(folder / onnx_export.SUBDIR, ignore_errors=True)  # 600 MB: not kept in pytest's tmp


@pytest.fixture(scope="module")
def fp32(exported: Path) -> OnnxEncoder:
    return OnnxEncoder(str(exported), "fp32", threads=2)


@pytest.fixture(scope="module")
def int8(exported: Path) -> OnnxEncoder:
    return OnnxEncoder(str(exported), "int8", threads=2)


@pytest.fixture(scope="module")
def torch_encoder(source_model: Path) -> Encoder:
    """The reference: sentence-transformers itself (the suite's real_encoder is the ONNX default now)."""
    return SentenceTransformerEncoder(str(source_model))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.sum(a * b, axis=1))


def test_export_writes_both_variants_with_a_stamp_and_skips_a_current_one(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = exported / onnx_export.SUBDIR
    stamp = json.loads((folder / onnx_export.STAMP).read_text())
    assert stamp["export_version"] == onnx_export.EXPORT_VERSION
    assert stamp["variants"] == {"fp32": "model.onnx", "int8": "model-int8.onnx"}
    assert (folder / "model-int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size / 3
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


def test_onnx_vectors_agree_with_torch(torch_encoder: Encoder, fp32: OnnxEncoder, int8: OnnxEncoder) -> None:
    reference = torch_encoder.encode(TEXTS)
    for encoder in (fp32, int8):
        vectors = encoder.encode(TEXTS)
        assert vectors.shape == reference.shape and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(reference, fp32.encode(TEXTS)).min() >= 0.999
    # int8 measured 0.997 mean, 0.995 minimum on 1,000 shop texts (bench/encoder_bench.py).
    cosines = _cosines(reference, int8.encode(TEXTS))
    assert cosines.mean() >= 0.99
    assert cosines.min() >= 0.98


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
    _link_copy(source_model, bare)
    fallback = open_encoder(str(bare))
    assert isinstance(fallback, SentenceTransformerEncoder)
    assert fallback.name == str(bare)
    assert fallback.encode(["发什么快递"]).shape == (1, 384)
