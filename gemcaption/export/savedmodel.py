"""Writing a captioner as a TensorFlow SavedModel, atomically, and finding the space that goes with it.

The directory is a standard SavedModel (``saved_model.pb``, ``variables/``, ``assets/``), so
``tf.saved_model.load(out)`` and TensorFlow Serving read it, plus gemcaption's ``manifest.json``
(format ``gemcaption-savedmodel``: where the model came from, its signatures and settings, the
sha256 of every file) and the ``COMPLETE`` marker of :func:`gemcaption.persistence.save_directory`.
Signatures, inputs and outputs are listed in :data:`SIGNATURES` (see docs/export.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ModelError
from ..persistence import MANIFEST_FILE, PathLike, has_manifest, read_json, save_directory

FORMAT = "gemcaption-savedmodel"
FORMAT_VERSION = 1
SPACE_SUBDIRECTORY = "space"
SIGNATURES = {
    "serving_default": {"inputs": {"images": "string (N,)"}, "outputs": {"captions": "string (N,)"}},
    "embed_text": {"inputs": {"texts": "string (N,)"}, "outputs": {"text_embeddings": "float32 (N, dim)"}},
}


def check_export_target(out: PathLike, force: bool = False) -> Path:
    """``out`` if an export may be written there: a new path, or with ``force`` an empty directory
    or an earlier export. Anything else is a :class:`ModelError`, before any work is done."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out}: exists and is not a directory")
    if out.is_dir():
        if not force:
            raise ModelError(f"{out}: already exists; use --force to replace an earlier export")
        if any(out.iterdir()) and not is_export_directory(out):
            raise ModelError(f"{out}: exists and is not a gemcaption SavedModel export; refusing to replace it")
    return out


def is_export_directory(path: PathLike) -> bool:
    """True when ``path`` holds an export written by :func:`export_savedmodel`."""
    path = Path(path)
    if not has_manifest(path):
        return False
    try:
        return read_json(path / MANIFEST_FILE).get("format") == FORMAT
    except (ModelError, AttributeError):
        return False


def find_space(captioner):
    """The learned caption space that belongs to ``captioner``: its ``space`` attribute when set,
    else ``MODEL/space/`` of the directory it was loaded from, else None."""
    space = getattr(captioner, "space", None)
    if space is not None:
        return space
    model_dir = getattr(captioner, "model_dir", None)
    if model_dir is None:
        return None
    from ..space import CaptionSpace, is_space_directory

    directory = Path(model_dir) / SPACE_SUBDIRECTORY
    return CaptionSpace.load(directory) if is_space_directory(directory) else None


def export_savedmodel(
    captioner,
    out: PathLike,
    *,
    force: bool = False,
    space: Any = None,
    min_length: int = 1,
    max_length: int | None = None,
) -> Path:
    """Write ``captioner`` (trained) as a TensorFlow SavedModel in directory ``out``; returns ``out``.

    ``serving_default`` takes encoded images (tf.string, JPEG/PNG/GIF/BMP) and returns their greedy
    ``captions`` with ``min_length``/``max_length`` as in
    :class:`~gemcaption.captioning.samplers.GreedySampler`. With a learned caption space (``space``,
    default: :func:`find_space`; ``False`` for none) it also returns ``image_embeddings`` and an
    ``embed_text`` signature maps strings to ``text_embeddings``. An existing ``out`` is refused
    unless ``force`` (see :func:`check_export_target`); the write is atomic.
    """
    from ..captioning.samplers import GreedySampler

    greedy = GreedySampler(min_length=min_length, max_length=max_length)  # ConfigError for bad values
    out = check_export_target(out, force)
    captioner._require_trained()
    space = find_space(captioner) if space is None else (space or None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from .graph import ServingGraph

    graph = ServingGraph(captioner, space, greedy.min_length, greedy.max_length)
    archive = keras.export.ExportArchive()
    archive.track(graph.encoder)
    archive.track(graph.decoder)
    archive.add_endpoint(
        "serving_default", graph.caption_images, input_signature=[tf.TensorSpec([None], tf.string, name="images")]
    )
    if space is not None:
        archive.track(space.model)
        archive.track(graph.space_words)
        archive.add_endpoint(
            "embed_text", graph.embed_texts, input_signature=[tf.TensorSpec([None], tf.string, name="texts")]
        )
    signatures = {"serving_default": SIGNATURES["serving_default"]}
    if space is not None:
        serving = SIGNATURES["serving_default"]
        outputs = {**serving["outputs"], "image_embeddings": "float32 (N, dim)"}
        signatures = {"serving_default": {**serving, "outputs": outputs}, "embed_text": SIGNATURES["embed_text"]}
    config = {
        "gemcaption_version": __version__,
        "tensorflow_version": tf.__version__,
        "source_model": captioner.model_dir,
        "encoder": captioner.encoder.name,
        "image_size": captioner.encoder.image_size,
        "decoder": captioner.config.decoder.kind,
        "sampler": {"name": "greedy", "config": greedy.get_config()},
        "space": None if space is None else space.get_config(),
        "signatures": signatures,
    }

    def write(staged: Path) -> None:
        archive.write_out(str(staged), verbose=False)

    save_directory(out, FORMAT, FORMAT_VERSION, config["decoder"], config, write, what="export")
    return out
