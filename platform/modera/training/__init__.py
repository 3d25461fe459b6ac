"""Training: labelled data through Ray Data, fine-tuning through Ray Train, logging through MLflow."""
