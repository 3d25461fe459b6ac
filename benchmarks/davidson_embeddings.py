"""Davidson 2017 tweets embedded once with the packaged all-MiniLM-L6-v2 encoder, cached on disk.

Shared by the labeling benchmarks (propagation_quality, active_learning). The cache file is keyed by
the CSV's size and modification time and by the encoder's model id, so a changed file or encoder
re-embeds. Embedding all 24,783 tweets takes a few minutes on two CPU cores.

    python -m benchmarks.davidson_embeddings --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path("~/.modera/bench")
CSV = Path("text") / "davidson2017" / "labeled_data.csv"
CLASS_NAMES = ["hate", "offensive", "neither"]  # Davidson's class 0, 1, 2


def _cache_path(data_dir: Path, cache_dir: Path, model_id: str) -> Path:
    stat = (data_dir / CSV).stat()
    key = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}:{model_id}".encode()).hexdigest()[:16]
    return cache_dir.expanduser() / f"davidson_embeddings_{key}.npz"


def load_embeddings(data_dir: Path, cache_dir: Path = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (n, 384) unit rows, y int (n,) in {0 hate, 1 offensive, 2 neither}) for every tweet."""
    from modera.labeling.embed import text_model_id

    data_dir = Path(data_dir)
    model_id = text_model_id(None)
    path = _cache_path(data_dir, Path(cache_dir), model_id)
    if path.is_file():
        with np.load(path) as saved:
            return saved["X"].astype(np.float32), saved["y"].astype(np.int64)
    import torch

    from benchmarks.text_quality import load_davidson
    from modera.labeling.embed import TextEmbedder

    torch.set_num_threads(2)
    frame = load_davidson(data_dir)
    embedder = TextEmbedder.load(None)
    started = time.perf_counter()
    X = embedder.embed(list(frame["text"]), batch_size=128).astype(np.float32)
    seconds = time.perf_counter() - started
    print(f"embedded {len(X)} Davidson tweets with {embedder.model_id} in {seconds:.0f}s "
          f"({len(X) / seconds:.0f} texts/s, 2 threads); cached at {path}")
    y = frame["klass"].to_numpy().astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, X=X, y=y, model_id=np.array(embedder.model_id), seconds=np.array(seconds))
    tmp.replace(path)
    return X, y


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="the shared data folder")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = p.parse_args(argv)
    X, y = load_embeddings(args.data_dir, args.cache_dir)
    counts = ", ".join(f"{name} {int((y == i).sum())}" for i, name in enumerate(CLASS_NAMES))
    print(f"{X.shape[0]} x {X.shape[1]} embeddings ({X.dtype}); {counts}")


if __name__ == "__main__":
    main()
