"""Ray jobs, one module per job: ``ray job submit --working-dir . --runtime-env-json '{"py_modules": ["platform/modera"]}' -- python -m pipelines.<name>``."""
