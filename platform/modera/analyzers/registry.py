"""The explicit list of analyzers. Adding a modality means adding its class here."""

from __future__ import annotations

from collections.abc import Iterable

from modera.analyzers.audio import AudioAnalyzer
from modera.analyzers.base import Analyzer
from modera.analyzers.ocr import OcrAnalyzer
from modera.analyzers.text import TextAnalyzer
from modera.analyzers.video import VideoAnalyzer
from modera.analyzers.vision import VisionAnalyzer
from modera.errors import ConfigError, DuplicateNameError

ANALYZERS: tuple[type[Analyzer], ...] = (TextAnalyzer, VisionAnalyzer, OcrAnalyzer, AudioAnalyzer, VideoAnalyzer)


def build_registry(classes: Iterable[type[Analyzer]]) -> dict[str, type[Analyzer]]:
    """Index analyzer classes by name; a duplicate name is a configuration error, not a silent override."""
    registry: dict[str, type[Analyzer]] = {}
    for cls in classes:
        name = cls.name()
        if name in registry:
            raise DuplicateNameError(
                f"analyzer name {name!r} is used by both {registry[name].__qualname__} and {cls.__qualname__}"
            )
        registry[name] = cls
    return registry


def get_analyzer_class(name: str) -> type[Analyzer]:
    """Look an analyzer up by name, saying which names exist when it is missing."""
    registry = build_registry(ANALYZERS)
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(f"no analyzer named {name!r}; available: {sorted(registry)}") from None
