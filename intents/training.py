"""Training the Rasa NLU model, only when its data or configuration changed."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intents.classifier import DEFAULT_C, EmbeddingClassifier, Encoder
from intents.normalise import normalise

logger = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parent
CONFIG = PROJECT / "config.yml"
DATA = PROJECT / "data"
REQUIREMENTS = PROJECT / "requirements.txt"


Corrections = Sequence[tuple[str, str]]


class TrainingError(Exception):
    """Rasa could not train the model."""


# Rasa's inline entity markup: [西湖龙井](product) or [黑色]{"entity": "color"}.
ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")
# Bump when compose() changes: the hash then retrains both models.
COMPOSE_VERSION = "1"
CHITCHAT = frozenset({"greet", "goodbye", "thanks", "human_agent", "out_of_scope"})
_GREETINGS = ("你好", "您好", "在吗", "亲 在吗", "你好 在吗", "hello", "老板你好", "客服你好", "在不在", "亲亲", "您好，请问")
_THANKS = ("谢谢", "谢谢啦", "麻烦了", "辛苦了", "谢谢亲", "多谢", "麻烦尽快，谢谢")
_HUMAN = ("我要转人工", "人工", "转人工客服")


@dataclass(frozen=True)
class Example:
    """One training message: Rasa's text (entity markup kept) and its intent."""

    text: str
    intent: str

    @property
    def plain(self) -> str:
        """The text without entity markup, as the classifier sees it."""
        return ANNOTATION.sub(r"\1", self.text)


def data_files() -> list[Path]:
    """The shipped training files: Rasa YAML and ``text,intent`` CSV."""
    return sorted([*DATA.glob("*.yml"), *DATA.glob("**/*.csv")])


def read_examples(paths: list[Path] | None = None) -> list[Example]:
    """Every example in the shipped training files."""
    import yaml

    examples: list[Example] = []
    for path in paths if paths is not None else data_files():
        if path.suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as f:
                examples.extend(
                    Example(row["text"].strip(), row["intent"].strip()) for row in csv.DictReader(f) if row.get("text")
                )
            continue
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu", []):
            if "intent" in item:
                for line in str(item.get("examples", "")).splitlines():
                    line = line.strip()
                    if line.startswith("- "):
                        examples.append(Example(line[2:].strip(), str(item["intent"])))
    return examples


def clean(example: Example) -> Example:
    """The text as kefu classifies it: normalised (cards, links, repeats out)."""
    if ANNOTATION.search(example.text):
        return example  # written by hand with markup: keep Rasa's entity offsets intact
    text = normalise(example.text).text
    # Square brackets left in plain text would read as entity markup to Rasa.
    return Example(text.replace("[", "【").replace("]", "】"), example.intent)


def compose(examples: list[Example], seed: int = 7, per_intent: int = 40) -> list[Example]:
    """Seeded wrappers around requests: a greeting before, thanks after, "转人工" beside.

    Real shoppers wrap a request in small talk; the request keeps its intent.
    """
    rng = random.Random(seed)
    by_intent: dict[str, list[Example]] = {}
    for example in examples:
        if example.intent not in CHITCHAT:
            by_intent.setdefault(example.intent, []).append(example)
    out: list[Example] = []
    for intent in sorted(by_intent):
        pool = by_intent[intent]
        for _ in range(per_intent):
            base = rng.choice(pool).text
            shape = rng.random()
            if shape < 0.4:
                text = f"{rng.choice(_GREETINGS)} {base}"
            elif shape < 0.7:
                text = f"{base} {rng.choice(_THANKS)}"
            elif shape < 0.85:
                text = f"{rng.choice(_GREETINGS)} {base} {rng.choice(_THANKS)}"
            else:
                text = f"{rng.choice(_HUMAN)} {base}" if rng.random() < 0.5 else f"{base} {rng.choice(_HUMAN)}"
            out.append(Example(text, intent))
    return out


# The shop's own verdicts are its real traffic: each counts as this many examples.
CORRECTION_WEIGHT = 3


def training_set(corrections: Corrections = ()) -> list[Example]:
    """Shipped data, composed wrappers and the shop's corrections, all normalised."""
    shipped = [clean(e) for e in read_examples()]
    shipped = [e for e in shipped if e.plain]
    fixed = [e for e in (clean(Example(text, intent)) for text, intent in corrections) if e.plain]
    return shipped + compose(shipped) + fixed * CORRECTION_WEIGHT


def project_hash(corrections: Corrections = ()) -> str:
    """Content hash of everything that shapes the models: config, data, Rasa's pins, the shop's corrections."""
    digest = hashlib.sha256(COMPOSE_VERSION.encode())
    # The normaliser shapes every training text, so its code counts as data.
    for path in [CONFIG, REQUIREMENTS, PROJECT / "normalise.py", *data_files()]:
        digest.update(path.relative_to(PROJECT).as_posix().encode())
        digest.update(path.read_bytes())
    for text, intent in sorted(corrections):
        digest.update(f"\x00{text}\x01{intent}".encode())
    return digest.hexdigest()[:16]


def model_path(cache: Path, corrections: Corrections = ()) -> Path:
    """Where the Rasa model for the current data lives (outside the clone, reused across runs)."""
    return cache / "rasa-models" / f"nlu-{project_hash(corrections)}.tar.gz"


def classifier_path(cache: Path, encoder_name: str, corrections: Corrections = ()) -> Path:
    """Where the dense classifier for the current data and this encoder lives."""
    digest = hashlib.sha256(f"{project_hash(corrections)}|{encoder_name}|{DEFAULT_C}".encode()).hexdigest()[:16]
    return cache / "rasa-models" / f"dense-{digest}.npz"


def rasa_executable(rasa_venv: Path) -> Path:
    """The ``rasa`` command inside its own Python 3.10 venv."""
    exe = rasa_venv / "bin" / "rasa"
    if not exe.exists():
        raise TrainingError(f"Rasa is not installed at {rasa_venv} (run `make setup`)")
    return exe


def write_rasa_data(examples: list[Example], folder: Path) -> None:
    """The examples as one Rasa NLU file, plus the shipped regexes."""
    by_intent: dict[str, list[str]] = {}
    for example in examples:
        by_intent.setdefault(example.intent, []).append(example.text)
    lines = ['version: "3.1"', "nlu:"]
    for item in (yaml_load(path) for path in sorted(DATA.glob("*.yml"))):
        for entry in item.get("nlu", []):
            if "regex" in entry or "lookup" in entry or "synonym" in entry:
                key = next(k for k in ("regex", "lookup", "synonym") if k in entry)
                lines.append(f"- {key}: {entry[key]}")
                lines.append("  examples: |")
                lines.extend(f"    {line}" for line in str(entry["examples"]).splitlines() if line.strip())
    for intent in sorted(by_intent):
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        for text in dict.fromkeys(by_intent[intent]):
            lines.append(f"    - {' '.join(text.split())}")
    (folder / "nlu.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def yaml_load(path: Path) -> dict[str, Any]:
    """One Rasa YAML file."""
    import yaml

    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


@dataclass(frozen=True)
class TrainedModels:
    """The two files that make kefu's intent model."""

    rasa: Path
    dense: Path | None


def train_rasa(
    cache: Path, rasa_venv: Path, examples: list[Example], target: Path, *, quiet: bool = False, config: Path = CONFIG
) -> Path:
    """Run ``rasa train nlu`` on ``examples`` into ``target`` (``config``: another pipeline, for benchmarks)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as out:
        data = Path(out) / "data"
        data.mkdir()
        write_rasa_data(examples, data)
        cmd = [
            str(rasa_executable(rasa_venv)),
            "train",
            "nlu",
            "--config",
            str(config),
            "--nlu",
            str(data),
            "--out",
            out,
            "--fixed-model-name",
            "model",
        ]
        # Rasa's component cache goes next to the models, never into the project folder.
        env = {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "RASA_CACHE_DIRECTORY": str(cache / "rasa-train-cache"),
        }
        # Rasa prints its own progress bars per epoch: shown on a terminal, kept quiet in CI logs.
        result = subprocess.run(
            cmd,
            cwd=PROJECT,
            env=env,
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=subprocess.PIPE if quiet else None,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stderr or "")[-2000:] if quiet else ""
            raise TrainingError(f"rasa train nlu failed ({result.returncode}) {tail}")
        shutil.move(str(Path(out) / "model.tar.gz"), target)
    logger.info("Rasa model trained: %s", target)
    return target


def train_dense(encoder: Encoder, examples: list[Example], target: Path, memory: dict[str, str] | None = None) -> Path:
    """Fit the dense classifier on the examples' embeddings into ``target``."""
    logger.info("embedding %d examples for the dense intent classifier …", len(examples))
    embeddings = encoder.encode([e.plain for e in examples])
    EmbeddingClassifier.train(embeddings, [e.intent for e in examples], encoder.name, memory=memory).save(target)
    logger.info("dense intent classifier trained: %s", target)
    return target


RasaTrainer = Callable[[list[Example], Path], Path]


def train(
    cache: Path,
    rasa_venv: Path,
    *,
    encoder: Encoder | None = None,
    corrections: Corrections = (),
    force: bool = False,
    quiet: bool = False,
    rasa_trainer: RasaTrainer | None = None,
) -> TrainedModels:
    """Train whatever is missing for the current data (or everything, with ``force``)."""
    corrections = list(corrections)
    examples = training_set(corrections)
    rasa = model_path(cache, corrections)
    rasa.parent.mkdir(parents=True, exist_ok=True)
    if force or not rasa.exists():
        if rasa_trainer is None:
            train_rasa(cache, rasa_venv, examples, rasa, quiet=quiet)
        else:
            rasa_trainer(examples, rasa)
    else:
        logger.info("Rasa model up to date: %s", rasa)
    dense = None
    if encoder is not None:
        dense = classifier_path(cache, encoder.name, corrections)
        if force or not dense.exists():
            memory = {e.plain: e.intent for e in (clean(Example(t, i)) for t, i in corrections) if e.plain}
            train_dense(encoder, examples, dense, memory)
        else:
            logger.info("dense intent classifier up to date: %s", dense)
    return TrainedModels(rasa, dense)


def default_cache() -> Path:
    """Where venvs and models built by setup live: ``~/.cache/kefu``."""
    return Path.home() / ".cache" / "kefu"


def default_rasa_venv(cache: Path | None = None) -> Path:
    """The Rasa venv ``make setup`` builds, named by the hash of intents/requirements.txt."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    return (cache or default_cache()) / f"rasa-venv-{digest}"
