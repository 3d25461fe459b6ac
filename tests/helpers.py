"""Small helpers shared by the test levels."""

from __future__ import annotations

import time

import requests


def wait_healthy(url: str, timeout_s: float = 180) -> None:
    """Until ``url/healthz`` answers 200 (a replica has loaded its model)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url}/healthz did not answer 200 within {timeout_s:.0f}s")
