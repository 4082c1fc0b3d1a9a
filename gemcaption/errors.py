"""Every exception gemcaption raises on purpose. The CLI turns each into one line on stderr.

All derive from :class:`GemcaptionError`. Errors about a bad argument are also ``ValueError``
(``ConfigError``, ``UnknownNameError``, ``ImageError``, ``DatasetError``, ``EvaluationError``,
``QueryError``), so code that catches ``ValueError`` keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable


class GemcaptionError(Exception):
    """Base class of every error gemcaption raises on purpose."""


class ConfigError(GemcaptionError, ValueError):
    """An argument or configuration value is out of range or of the wrong type."""


class UnknownNameError(ConfigError):
    """A name (encoder, decoder, sampler, embedder, classifier kind, dataset format...) is not
    registered. The message lists the choices; ``choices`` holds them."""

    def __init__(self, kind: str, name: object, choices: Iterable[str]):
        self.kind, self.name, self.choices = kind, name, list(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices)}")


class ImageError(GemcaptionError, ValueError):
    """An image could not be read: missing, corrupt, truncated, empty, not an image, or too large."""


class PixelLimitError(ImageError):
    """An image has more pixels than the cap in force (checked from its header, before decoding)."""


class DatasetError(GemcaptionError, ValueError):
    """A dataset could not be loaded, or is empty."""


class ModelError(GemcaptionError):
    """A model or index directory is missing, unreadable, damaged or of an unknown format version."""


class WeightsError(GemcaptionError):
    """Pretrained weights could not be obtained from the requested source."""


class EvaluationError(GemcaptionError, ValueError):
    """Inputs to a metric are inconsistent (lengths differ, nothing to score, ...)."""


class QueryError(GemcaptionError, ValueError):
    """A search query is empty, malformed or of a type that cannot be searched."""


# The names these had before they moved here.
UnknownEncoderError = UnknownNameError


class LockedError(GemcaptionError):
    """Another process is writing the directory: "index IDX is being written by PID N (waited S s)"."""


class ConflictError(GemcaptionError):
    """A directory changed on disk since it was loaded: saving would silently drop the other writer's
    changes. Load it again and redo the change (or use ``Retriever.edit``)."""
