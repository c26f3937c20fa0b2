"""Export a sentence-transformers folder's transformer to ONNX, with an int8 copy beside it.

``python -m kb.onnx_export MODEL_DIR`` writes ``MODEL_DIR/onnx/model.onnx`` (float32, the last
hidden state for ``input_ids`` and ``attention_mask`` with dynamic batch and sequence axes),
``model-int8.onnx`` (its MatMul and embedding weights dynamically quantised to int8) and a stamp.
A current export is skipped. The new folder is built beside the old one and renamed into place,
so a reader never sees half an export. Every export is checked against sentence-transformers on
``PROBE`` texts before it counts (``AGREEMENT``); the figures go in the stamp, and an export made
before the check is checked, not re-exported, the next time the command runs. Pooling and normalising stay outside the graph (in
``kb.encoder.OnnxEncoder``), so only folders that mean-pool are exported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Bump when the exported graphs change (opset, quantisation): folders then re-export, and the
# ONNX encoders' names change with it, so models trained on the old vectors are retrained.
EXPORT_VERSION = "1"
SUBDIR = "onnx"
STAMP = "kefu_onnx.json"
VARIANTS = {"fp32": "model.onnx", "int8": "model-int8.onnx"}
OPSET = 17  # LayerNormalization is a single op from 17 on


# Shop-like texts of every length the encoder meets, one past the folder's 256 tokens (truncated the
# way sentence-transformers truncates), English and emoji among them.
PROBE = [
    "面膜孕妇能用吗",
    "发什么快递",
    "你好，我昨天下的单，订单号 2025112412345678，现在还没发货，能帮我催一下吗？谢谢",
    "婴儿推车能上飞机吗",
    "现货商品付款后48小时内发货，每天16:00前付款的订单当天发出；预售商品按商品页写明的日期发货。",
    "Is this hair dryer 220V?",
    "😡😡😡 太差了",
    "好",
    "这款电饭煲做出来的米饭非常香，内胆不粘，清洗也方便。" * 20,
    "物流很快，包装也很好，宝宝很喜欢，下次还来",
    "充一次电能用多久",
    "尺码偏小吗，平时穿M的选哪个",
]
# The least cosine agreement with sentence-transformers an export must show on PROBE: float32 is
# the same function; int8 measured 0.997 mean, 0.995 minimum on 1,000 shop texts (bench/encoder_bench.py).
AGREEMENT = {"fp32": {"mean": 0.999, "min": 0.999}, "int8": {"mean": 0.99, "min": 0.98}}


class OnnxExportError(Exception):
    """The folder cannot be exported (not a mean-pooling sentence-transformers folder)."""


@dataclass(frozen=True)
class Layout:
    """Where a sentence-transformers folder keeps its transformer and how it pools."""

    transformer: Path  # the Hugging Face model folder (config.json, weights)
    tokenizer: Path  # tokenizer.json
    max_seq_length: int


def read_layout(model_dir: Path) -> Layout:
    """The transformer module of ``model_dir``; refuse folders that do not mean-pool."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
    except (OSError, ValueError) as exc:
        raise OnnxExportError(f"{model_dir} is not a sentence-transformers folder: {exc}") from exc
    by_type = {m["type"].rsplit(".", 1)[-1]: model_dir / m["path"] for m in modules}
    if "Transformer" not in by_type or "Pooling" not in by_type:
        raise OnnxExportError(f"{model_dir}: expected a Transformer and a Pooling module, found {sorted(by_type)}")
    pooling = json.loads((by_type["Pooling"] / "config.json").read_text())
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        raise OnnxExportError(f"{model_dir}: only mean pooling is exported, the folder uses {sorted(modes)}")
    transformer = by_type["Transformer"]
    st_config = transformer / "sentence_bert_config.json"
    max_len = json.loads(st_config.read_text()).get("max_seq_length") if st_config.exists() else None
    if not (transformer / "tokenizer.json").exists():
        raise OnnxExportError(f"{transformer} has no tokenizer.json")
    return Layout(transformer, transformer / "tokenizer.json", int(max_len or 512))


def _source_fingerprint(layout: Layout) -> dict[str, Any]:
    """What the export was made from: a rebuilt model folder makes the export stale."""
    weights = sorted(p for p in layout.transformer.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    return {
        "weights": {p.name: p.stat().st_size for p in weights},
        "config_sha256": hashlib.sha256((layout.transformer / "config.json").read_bytes()).hexdigest(),
    }


def export_dir(model_dir: Path) -> Path:
    """The folder an export of ``model_dir`` lives in."""
    return model_dir / SUBDIR


def read_stamp(model_dir: Path) -> dict[str, Any] | None:
    """The stamp of a current export of ``model_dir``, or None when there is none or it is stale."""
    folder = export_dir(model_dir)
    try:
        stamp: dict[str, Any] = json.loads((folder / STAMP).read_text())
        layout = read_layout(model_dir)
    except (OSError, ValueError, OnnxExportError):
        return None
    if stamp.get("export_version") != EXPORT_VERSION or stamp.get("source") != _source_fingerprint(layout):
        return None
    if not all((folder / name).exists() for name in stamp.get("variants", {}).values()):
        return None
    return stamp


def variant_path(model_dir: Path, variant: str) -> Path | None:
    """The ONNX file of ``variant`` (fp32, int8) when ``model_dir`` has a current export holding it."""
    stamp = read_stamp(model_dir)
    if stamp is None or variant not in stamp.get("variants", {}):
        return None
    return export_dir(model_dir) / str(stamp["variants"][variant])


def _export_fp32(layout: Layout, out: Path) -> None:
    import torch
    from transformers import AutoModel

    # Eager attention traces into plain MatMul and Softmax nodes, which the int8 quantiser handles.
    model = AutoModel.from_pretrained(str(layout.transformer), attn_implementation="eager")
    model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # type: ignore[no-any-return]

    # Any ids the vocabulary holds trace the same graph (low ones fit every vocabulary).
    ids = torch.tensor([[0, 5, 6, 2], [0, 5, 2, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter: the dynamo one needs onnxscript, which kefu does not install,
        # so its deprecation notice is expected. The tracer's warnings are about the mask's padding
        # check, constant here because input_ids and attention_mask always have the same length.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            LastHidden(model),
            (ids, mask),
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            opset_version=OPSET,
            dynamo=False,
        )


def _quantize_int8(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Signed int8 weights, activations quantised per run (onnxruntime's recipe for transformers on
    # x86: https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html). One scale
    # per output channel, measured on 400 shop questions and reviews against torch: cosine mean
    # 0.997 (min 0.996) at the same speed, against 0.990 (min 0.984) with one scale per tensor;
    # reduce_range gave 0.973, uint8 weights 0.995 at half the speed. The embedding table is
    # quantised too (Gather): leaving it float32 changed nothing but the size (407 MB, not 118).
    quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=True)


def export(model_dir: Path, force: bool = False) -> Path:
    """Export ``model_dir`` once (skipped when current unless ``force``); returns the export folder."""
    layout = read_layout(model_dir)
    target = export_dir(model_dir)
    if not force and read_stamp(model_dir) is not None:
        return target
    _remove_leftovers(model_dir)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".{SUBDIR}-", dir=model_dir))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users of a shared folder
    try:
        _export_fp32(layout, tmp / VARIANTS["fp32"])
        logger.info("exported %s to ONNX in %.0f s", model_dir, time.monotonic() - started)
        _quantize_int8(tmp / VARIANTS["fp32"], tmp / VARIANTS["int8"])
        logger.info("quantised to int8 after %.0f s", time.monotonic() - started)
        import onnxruntime
        import torch

        stamp = {
            "export_version": EXPORT_VERSION,
            "source": _source_fingerprint(layout),
            "variants": VARIANTS,
            "opset": OPSET,
            "max_seq_length": layout.max_seq_length,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "seconds": round(time.monotonic() - started, 1),
        }
        # The stamp goes in last: a folder with a stamp is a complete export.
        (tmp / STAMP).write_text(json.dumps(stamp, indent=1))
        _replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check_agreement(model_dir)
    return target


def measure_agreement(model_dir: Path) -> dict[str, dict[str, float]]:
    """Cosine of each ONNX variant's vectors with sentence-transformers' own on PROBE: mean and minimum."""
    import numpy as np

    from kb.encoder import OnnxEncoder, SentenceTransformerEncoder

    reference = SentenceTransformerEncoder(str(model_dir)).encode(PROBE)
    measured = {}
    for variant in VARIANTS:
        vectors = OnnxEncoder(str(model_dir), variant, threads=2).encode(PROBE)
        cosines = np.sum(reference * vectors, axis=1)
        measured[variant] = {"mean": round(float(cosines.mean()), 5), "min": round(float(cosines.min()), 5)}
    return measured


def check_agreement(model_dir: Path) -> dict[str, dict[str, float]]:
    """Measure the current export against sentence-transformers and record it in the stamp.

    An export below ``AGREEMENT`` is removed and ``OnnxExportError`` raised: the encoder then falls
    back to sentence-transformers rather than serve vectors that disagree with it.
    """
    stamp = read_stamp(model_dir)
    if stamp is None:
        raise OnnxExportError(f"{model_dir} has no current ONNX export to check")
    measured = measure_agreement(model_dir)
    short = [
        f"{variant} {key} {measured[variant][key]:.4f} < {least}"
        for variant, limits in AGREEMENT.items()
        for key, least in limits.items()
        if measured[variant][key] < least
    ]
    if short:
        shutil.rmtree(export_dir(model_dir), ignore_errors=True)
        raise OnnxExportError(f"the ONNX export of {model_dir} disagrees with sentence-transformers: {', '.join(short)}")
    stamp["agreement"] = measured
    stamp_path = export_dir(model_dir) / STAMP
    written = stamp_path.with_suffix(".tmp")
    written.write_text(json.dumps(stamp, indent=1))
    written.replace(stamp_path)
    logger.info("ONNX agrees with sentence-transformers on %s probe texts: %s", len(PROBE), measured)
    return measured


def _remove_leftovers(model_dir: Path, older_than: float = 3600.0) -> None:
    """Drop the temp folders of exports killed half-way (600 MB each); a running one is younger."""
    for leftover in model_dir.glob(f".{SUBDIR}-*"):
        if leftover.is_dir() and time.time() - leftover.stat().st_mtime > older_than:
            shutil.rmtree(leftover, ignore_errors=True)


def _replace(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``, the old export out of the way first (a folder cannot be renamed over)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{time.time_ns()}")
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        if not target.exists():
            raise
        # Another exporter got there first: its export is as good as this one.
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m kb.onnx_export MODEL_DIR [--force]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--force", action="store_true", help="export again even when the export is current")
    args = parser.parse_args(argv)
    # Progress from this module only: the quantiser logs a line per tensor at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    model_dir: Path = args.model_dir.expanduser()
    started = time.monotonic()
    try:
        stamp = None if args.force else read_stamp(model_dir)
        if stamp is not None and "agreement" in stamp:
            print(f"ONNX export up to date: {export_dir(model_dir)}")
            return 0
        if stamp is not None:  # made before exports were checked: check it, keep it if it agrees
            print(f"ONNX export checked: {export_dir(model_dir)} {check_agreement(model_dir)}")
            return 0
        target = export(model_dir, force=args.force)
    except OnnxExportError as exc:
        print(f"cannot export: {exc}")
        return 1
    print(f"ONNX export written: {target} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
