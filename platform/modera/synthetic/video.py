"""Encoding generated frames (and a mono sound track) as a video file with PyAV, for tests, benchmarks and
replica warm-ups."""

from __future__ import annotations

import numpy as np
from PIL import Image


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
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array[: stream.height, : stream.width]),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        if sound is not None:
            for start in range(0, len(audio), 1024):
                pcm = (np.clip(audio[start:start + 1024], -1, 1) * 32767).astype(np.int16).reshape(1, -1)
                chunk = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
                chunk.sample_rate = sample_rate
                for packet in sound.encode(chunk):
                    container.mux(packet)
        for s in (stream, sound) if sound is not None else (stream,):
            for packet in s.encode():
                container.mux(packet)
    return path
