"""Ray jobs, one module per job: ``ray job submit --working-dir . -- python -m pipelines.<name>``."""
