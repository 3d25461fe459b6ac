"""A benchmark's scratch folder: temporary unless the user names one, removed when the process exits."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str, given: str | Path | None = None) -> Path:
    """``given`` as is (the user keeps it), or a fresh temporary folder that goes at exit.

    Benchmarks write models, MLflow stores and generated media (up to a GB per run); left in /tmp, a
    few runs fill a small disk.
    """
    if given is not None:
        return Path(given)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
