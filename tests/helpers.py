"""Small helpers shared by the test levels."""

from __future__ import annotations

import os
import time

import numpy as np
import requests
from PIL import Image, ImageDraw

from modera.synthetic.patterns import pattern  # noqa: F401  (tests import it from here)

# Every endpoint but health needs an API key. The test session's admin key reaches Serve replicas and jobs through
# MODERA_ADMIN_KEY (set before the Ray head starts; replicas register it in the store on first use), and ``http``
# is a requests session that sends it. Tests of authentication itself use plain ``requests``.
ADMIN_KEY = os.environ.setdefault("MODERA_ADMIN_KEY", "mdr_testsess_" + "k" * 43)
http = requests.Session()
http.headers["Authorization"] = f"Bearer {ADMIN_KEY}"


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


def write_video(path, frames, fps: int = 10, codec: str = "libx264", *, crf: int | None = None,
                audio: np.ndarray | None = None, sample_rate: int = 16_000):
    """Encode RGB frames (PIL images or uint8 arrays, all one size) as a video file with PyAV, with ``audio``
    (mono float samples in [-1, 1]) as an AAC track when given; returns path."""
    import av

    arrays = [np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else f, dtype=np.uint8) for f in frames]
    height, width = arrays[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        if crf is not None:
            stream.options = {"crf": str(crf)}
        sound = None
        if audio is not None:  # every stream is added before the first packet is muxed
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
        for array in arrays:
            frame = av.VideoFrame.from_ndarray(array[: stream.height, : stream.width], format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        if sound is not None:
            for start in range(0, len(audio), 1024):
                pcm = (np.asarray(audio[start:start + 1024]) * 32767).astype(np.int16).reshape(1, -1)
                chunk = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
                chunk.sample_rate = sample_rate
                for packet in sound.encode(chunk):
                    container.mux(packet)
        for s in (stream, sound) if sound is not None else (stream,):
            for packet in s.encode():
                container.mux(packet)
    return path


def text_card(text: str, size: tuple[int, int] = (320, 240), font_size: int = 22) -> Image.Image:
    """A white card with one line of black DejaVu Sans text (matplotlib's bundled font), for OCR."""
    from pathlib import Path

    import matplotlib
    from PIL import ImageFont

    font = ImageFont.truetype(str(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"),
                              font_size)
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((12, size[1] // 2 - 20), text, font=font, fill="black")
    return image


def stub_text_analyzer():
    """A TextAnalyzer that scores 'idiot' as harassment and records every batch it is given: for analyzers that
    reuse the text analyzer (OCR, audio) in unit tests."""
    from modera.analyzers.text import TextAnalyzer
    from modera.schemas import CategoryResult, ModelRef, Result

    class _Stub(TextAnalyzer):
        def __init__(self) -> None:
            super().__init__()
            self.batches: list[list[str]] = []
            self._ref: ModelRef | None = None

        @property
        def model_ref(self) -> ModelRef | None:
            return self._ref

        @property
        def categories(self) -> tuple[str, ...]:
            return ("harassment", "spam")

        def load(self, model_uri: str) -> ModelRef:
            self._ref = ModelRef(name="stub", version="7")
            return self._ref

        def _analyze(self, items):
            self.batches.append([i.text for i in items])
            out = []
            for item in items:
                score = 0.9 if "idiot" in item.text.lower() else 0.1
                out.append(Result(item_id=item.id, modality="text", model=self._ref, normalized_text=item.text,
                                  categories={"harassment": CategoryResult(score=score, severity=3 if score > 0.5 else 0),
                                              "spam": CategoryResult(score=0.0, severity=0)}))
            return out

    return _Stub()


def require_executable(name: str, package: str) -> str:
    """The path of ``name``; skips the test without it, or fails under MODERA_REQUIRE_SYSTEM_DEPS=1 (CI)."""
    import shutil

    exe = shutil.which(name)
    if exe is None:
        missing_system_package(f"{name} is not installed (apt-get install {package})")
    return exe


def missing_system_package(message: str) -> None:
    """Skip the test for a missing system package, or fail it under MODERA_REQUIRE_SYSTEM_DEPS=1 (CI)."""
    import os

    import pytest

    if os.environ.get("MODERA_REQUIRE_SYSTEM_DEPS") == "1":
        pytest.fail(f"{message}; MODERA_REQUIRE_SYSTEM_DEPS=1 requires it")
    pytest.skip(message)


def require_espeak() -> str:
    """The espeak-ng executable (synthesises the speech the speech tests transcribe)."""
    return require_executable("espeak-ng", "espeak-ng")


def speak(text: str, folder, rate: int = 140, extra: tuple[str, ...] = ()) -> np.ndarray:
    """``text`` spoken by espeak-ng as 16 kHz mono float32 (the WAV is written in ``folder``)."""
    import subprocess
    from pathlib import Path

    import librosa
    import soundfile as sf

    exe = require_espeak()
    wav = Path(folder) / f"speech-{abs(hash((text, rate, extra)))}.wav"
    subprocess.run([exe, "-s", str(rate), *extra, "-w", str(wav), text], check=True, capture_output=True, timeout=30)
    audio, sr = sf.read(str(wav), dtype="float32", always_2d=False)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return librosa.resample(audio, orig_sr=sr, target_sr=16_000).astype(np.float32)
