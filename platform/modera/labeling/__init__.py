"""The labeling loop: embeddings, label propagation, selection for review, retraining inputs."""
