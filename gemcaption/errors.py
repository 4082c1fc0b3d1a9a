"""Exceptions raised by gemcaption. The CLI turns each into one line on stderr."""


class GemcaptionError(Exception):
    """Base class of every error gemcaption raises on purpose."""


class ImageError(GemcaptionError, ValueError):
    """An image could not be read: missing, corrupt, truncated, empty, not an image, or too large."""


class DatasetError(GemcaptionError, ValueError):
    """A dataset could not be loaded, or is empty."""


class ModelError(GemcaptionError):
    """A model directory is missing, unreadable or inconsistent."""


class WeightsError(GemcaptionError):
    """Pretrained weights could not be obtained from the requested source."""
