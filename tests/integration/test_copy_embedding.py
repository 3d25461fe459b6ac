"""The copy-detection embedding trained through Ray Train (contrastive, copy-style edits), logged and registered in
MLflow, then loaded by the matcher's encoder loader from the registry."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import pattern

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_trains_on_ray_registers_and_loads_as_the_matchers_encoder(settings, tmp_path):
    import mlflow

    from modera.matching.embedding import EmbeddingSignal, load_encoder
    from modera.training.copy_embedding import CopyEmbeddingConfig
    from pipelines.train_copy_embedding import MODEL_NAME, train_and_register

    cfg = CopyEmbeddingConfig(num_generated=24, image_size=64, proj_dim=32, epochs=2, batch_size=8,
                              max_steps_per_epoch=2, run_name="copy-embedding-it")
    ref, before, after = train_and_register(cfg, settings, eval_images=12)
    assert 0 <= before <= 1 and 0 <= after <= 1
    version = mlflow.MlflowClient().get_model_version(MODEL_NAME, ref.version)
    assert version.tags["kind"] == "copy_embedding" and version.tags["proj_dim"] == "32"
    metrics = mlflow.get_run(version.run_id).data.metrics
    assert {"retrieval_top1_before", "retrieval_top1_after", "train_loss"} <= set(metrics)
    assert np.isfinite(metrics["train_loss"])

    encoder = load_encoder(f"models:/{MODEL_NAME}/{ref.version}", cache_dir=tmp_path / "cache")
    assert encoder.dim == 32 and "#" in encoder.name  # the weights' digest names the embedding model
    rows = EmbeddingSignal(encoder).embed([pattern(1, 96), pattern(2, 96)])
    assert rows.shape == (2, 32) and np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
