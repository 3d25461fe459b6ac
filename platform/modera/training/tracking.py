"""Logging a finished training to MLflow tracking: parameters, curves, metrics, model, version."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from modera import registry
from modera.evaluation import evaluate_scores, flat_metrics, format_table, plot_curves
from modera.models.text_classifier import load_bundle
from modera.schemas import ModelRef
from modera.text.normalize import normalize
from modera.training.text import TextTrainConfig, TrainOutcome

logger = logging.getLogger(__name__)

PIP_REQUIREMENTS = ["modera"]


def ensure_experiment(name: str, artifact_location: str) -> str:
    """Create the experiment with an explicit artifact root (SQLite stores default to ./mlruns)."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        return mlflow.create_experiment(name, artifact_location=artifact_location)
    return experiment.experiment_id


def log_and_register(
    cfg: TextTrainConfig, outcome: TrainOutcome, experiment_id: str, model_name: str, extra_tags: dict[str, str] | None = None
) -> tuple[ModelRef, str]:
    """Evaluate the bundle on the held-out rows, log everything, and register a new version."""
    import mlflow

    from modera.models.text_pyfunc import TextPyfuncModel

    model = load_bundle(outcome.bundle_dir)
    vocab = model.word_vocabulary()
    scores = model.predict([normalize(t, vocab).normalized for t in outcome.val_texts])
    rows = evaluate_scores(outcome.val_labels, scores, outcome.label_columns)
    logger.info("validation metrics of %s:\n%s", outcome.run_name, format_table(rows))
    with mlflow.start_run(experiment_id=experiment_id, run_name=outcome.run_name) as run:
        mlflow.log_params(cfg.model_dump(exclude={"data"}) | {"data": ",".join(cfg.data), "labels": ",".join(outcome.label_columns)})
        for step, row in enumerate(outcome.history):
            mlflow.log_metrics({k: float(row[k]) for k in ("train_loss", "epoch_seconds") if k in row}, step=step)
        mlflow.log_metrics(flat_metrics(rows) | {"train_seconds": outcome.seconds})
        mlflow.log_dict({"positives_in_train": outcome.positives, "validation_rows": len(outcome.val_texts)}, "data_summary.json")
        with tempfile.TemporaryDirectory() as tmp:
            for path in plot_curves(outcome.val_labels, scores, outcome.label_columns, Path(tmp)):
                mlflow.log_artifact(str(path), "plots")
            (Path(tmp) / "validation_metrics.txt").write_text(format_table(rows), encoding="utf-8")
            mlflow.log_artifact(str(Path(tmp) / "validation_metrics.txt"))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=TextPyfuncModel(),
            artifacts={"bundle": str(outcome.bundle_dir)},
            pip_requirements=PIP_REQUIREMENTS,
        )
        tags = {"run_name": outcome.run_name, "labels": ",".join(outcome.label_columns),
                "encoder": model.meta.get("encoder", ""), **(extra_tags or {})}
        macro = flat_metrics(rows).get("val_macro_roc_auc")
        if macro is not None:
            tags["val_macro_roc_auc"] = f"{macro:.4f}"
        ref = registry.register(info.model_uri, model_name, tags=tags)
        return ref, run.info.run_id
