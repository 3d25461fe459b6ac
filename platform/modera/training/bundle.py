"""The local copy of a training run's final checkpoint, owned by the code that logs it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def checkpoint_to_local(checkpoint, prefix: str) -> Path:
    """Copy a Ray Train checkpoint (local or remote storage) into a fresh temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        checkpoint.to_directory(str(folder))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


class LocalBundle:
    """Mixin of the fit outcomes: ``with fit(...) as outcome:`` removes ``outcome.bundle_dir`` on exit.

    The bundle is a few hundred MB (encoder weights included); once it is logged to MLflow, the
    registry's copy is the one that counts, and a job that kept its own would fill the disk run by run.
    """

    bundle_dir: Path

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.bundle_dir, ignore_errors=True)
