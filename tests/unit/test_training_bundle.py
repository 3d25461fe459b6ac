"""The local copy of a final checkpoint: made in a fresh folder, removed with the outcome."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from modera.training.bundle import LocalBundle, checkpoint_to_local


class FakeCheckpoint:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def to_directory(self, path: str) -> None:
        (Path(path) / "weights.safetensors").write_bytes(b"w" * 10)
        if self.fail:
            raise OSError("storage went away mid-copy")


@dataclass
class Outcome(LocalBundle):
    bundle_dir: Path
    run_name: str


def test_checkpoint_is_copied_into_a_fresh_folder():
    first = checkpoint_to_local(FakeCheckpoint(), prefix="modera-test-bundle-")
    second = checkpoint_to_local(FakeCheckpoint(), prefix="modera-test-bundle-")
    try:
        assert first != second
        assert (first / "weights.safetensors").read_bytes() == b"w" * 10
    finally:
        Outcome(first, "a").discard()
        Outcome(second, "b").discard()
    assert not first.exists() and not second.exists()


def test_a_failed_copy_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(OSError, match="mid-copy"):
        checkpoint_to_local(FakeCheckpoint(fail=True), prefix="modera-test-bundle-")
    assert list(tmp_path.iterdir()) == []


def test_with_block_removes_the_bundle_even_on_error():
    outcome = Outcome(checkpoint_to_local(FakeCheckpoint(), prefix="modera-test-bundle-"), "run")
    with pytest.raises(RuntimeError), outcome as same:
        assert same is outcome and outcome.bundle_dir.is_dir()
        raise RuntimeError("logging to MLflow failed")
    assert not outcome.bundle_dir.exists()
