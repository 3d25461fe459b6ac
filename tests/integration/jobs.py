"""Submitting pipelines as `ray job submit` jobs to the session's Ray head, as the README shows.

A job ships this checkout: ``--working-dir`` carries ``pipelines/`` (the job's working directory, on the driver's
and every worker's ``sys.path``), and ``py_modules`` carries ``platform/modera``, because ``modera`` lives under the
``platform/`` source root, which is not on any ``sys.path`` a worker gets from the working directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import RAY, ray_cli_env


def submit(cmd: list[str], env: dict, cwd, timeout: float) -> subprocess.CompletedProcess:
    """`ray job submit`, retried while the head's job agent is still starting (`ray start` returns first)."""
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        if "No available agent to submit job" not in done.stdout + done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(3)


def job_runtime_env(settings, repo_root: Path) -> dict:
    """The runtime env every job here gets: this checkout's ``modera`` on every worker, and the session's data dir."""
    return {"py_modules": [str(repo_root / "platform" / "modera")],
            "env_vars": {"MODERA_DATA_DIR": str(settings.resolved_data_dir), "HF_HUB_OFFLINE": "1"}}


def job_cmd(settings, repo_root: Path, entrypoint: list[str], *submit_flags: str) -> list[str]:
    return [RAY, "job", "submit", *submit_flags, "--working-dir", str(repo_root),
            "--runtime-env-json", json.dumps(job_runtime_env(settings, repo_root)), "--", sys.executable, *entrypoint]


def run_job(ray_head, settings, repo_root: Path, module: str, *args: str, timeout: float = 600) -> str:
    """Submit ``python -m pipelines.<module> args`` and wait; the job's output (its logs) when it succeeded."""
    done = submit(job_cmd(settings, repo_root, ["-m", f"pipelines.{module}", *args]), ray_cli_env(ray_head),
                  repo_root, timeout)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout, done.stdout[-4000:]
    return done.stdout


def printed_json(output: str) -> dict:
    """The last JSON object a pipeline printed with ``indent=2`` (a line ``{`` up to the next line ``}``)."""
    lines = output.splitlines()
    end = max(i for i, line in enumerate(lines) if line == "}")
    start = max(i for i, line in enumerate(lines[:end]) if line == "{")
    return json.loads("\n".join(lines[start:end + 1]))
