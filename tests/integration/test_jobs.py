"""`ray job submit --working-dir .` against a running Ray head, as the README shows."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from tests.integration.conftest import RAY, ray_cli_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def submit(cmd: list[str], env: dict, cwd, timeout: float) -> subprocess.CompletedProcess:
    """`ray job submit`, retried while the head's job agent is still starting (`ray start` returns first)."""
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        if "No available agent to submit job" not in done.stdout + done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(3)


def test_train_text_runs_as_a_ray_job(ray_head, settings, seed_path, repo_root):
    runtime_env = {"env_vars": {"MODERA_DATA_DIR": str(settings.resolved_data_dir), "HF_HUB_OFFLINE": "1"}}
    cmd = [RAY, "job", "submit", "--working-dir", str(repo_root), "--runtime-env-json", json.dumps(runtime_env), "--",
           sys.executable, "-m", "pipelines.train_text", "--data", str(seed_path), "--epochs", "1",
           "--max-steps-per-epoch", "2", "--model-name", "modera-text-job"]
    done = submit(cmd, ray_cli_env(ray_head), repo_root, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "registered modera-text-job version 1" in done.stdout
    assert MlflowClient().get_model_version("modera-text-job", "1").status == "READY"


def test_a_failing_job_reports_the_reason(ray_head, settings, repo_root):
    cmd = [RAY, "job", "submit", "--working-dir", str(repo_root), "--", sys.executable, "-m", "pipelines.train_text",
           "--data", "/nonexistent/data.parquet"]
    done = submit(cmd, ray_cli_env(ray_head), repo_root, timeout=300)
    assert done.returncode != 0
    assert "/nonexistent/data.parquet: no such file" in done.stdout + done.stderr
