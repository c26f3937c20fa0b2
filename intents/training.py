"""Training the Rasa NLU model, only when its data or configuration changed."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parent
CONFIG = PROJECT / "config.yml"
DATA = PROJECT / "data"
REQUIREMENTS = PROJECT / "requirements.txt"


class TrainingError(Exception):
    """Rasa could not train the model."""


def project_hash() -> str:
    """Content hash of everything that shapes the model: config, data and Rasa's version pins."""
    digest = hashlib.sha256()
    for path in [CONFIG, REQUIREMENTS, *sorted(DATA.glob("*.yml"))]:
        digest.update(path.relative_to(PROJECT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_path(cache: Path) -> Path:
    """Where the model for the current data lives (outside the clone, reused across runs)."""
    return cache / "rasa-models" / f"nlu-{project_hash()}.tar.gz"


def rasa_executable(rasa_venv: Path) -> Path:
    """The ``rasa`` command inside its own Python 3.10 venv."""
    exe = rasa_venv / "bin" / "rasa"
    if not exe.exists():
        raise TrainingError(f"Rasa is not installed at {rasa_venv} (run `make setup`)")
    return exe


def train(cache: Path, rasa_venv: Path, *, force: bool = False, quiet: bool = False) -> Path:
    """Train unless a model for the current data exists; return the model file."""
    target = model_path(cache)
    if target.exists() and not force:
        logger.info("Rasa model up to date: %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as out:
        cmd = [
            str(rasa_executable(rasa_venv)),
            "train",
            "nlu",
            "--config",
            str(CONFIG),
            "--nlu",
            str(DATA),
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
        produced = Path(out) / "model.tar.gz"
        shutil.move(str(produced), target)
    logger.info("Rasa model trained: %s", target)
    return target


def default_cache() -> Path:
    """Where venvs and models built by setup live: ``~/.cache/kefu``."""
    return Path.home() / ".cache" / "kefu"


def default_rasa_venv(cache: Path | None = None) -> Path:
    """The Rasa venv ``make setup`` builds, named by the hash of intents/requirements.txt."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    return (cache or default_cache()) / f"rasa-venv-{digest}"


def main(argv: list[str] | None = None) -> int:
    """``python -m intents.training CACHE RASA_VENV [--force]``: used by ``make setup``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cache", type=Path)
    parser.add_argument("rasa_venv", type=Path)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = train(args.cache, args.rasa_venv, force=args.force)
    except TrainingError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
