"""Exporting a trained captioner for serving outside Python: a TensorFlow SavedModel.

It owns :func:`export_savedmodel` (:mod:`.savedmodel`: the directory, its manifest, the atomic
write and the optional learned caption space), the serving functions (:mod:`.graph`: encoder,
greedy decoding and text embedding inside the graph) and the in-graph image reading that matches
:func:`gemcaption.data.images.load_images` pixel for pixel (:mod:`.pixels`, with the EXIF
orientation in :mod:`.exif`). TensorFlow is imported only when an export is written.
``gemcaption export`` (:mod:`gemcaption.cli.export`) is the command line; docs/export.md says how
to serve the result with TensorFlow Serving.
"""

from .savedmodel import FORMAT, check_export_target, export_savedmodel, find_space, is_export_directory

__all__ = ["FORMAT", "check_export_target", "export_savedmodel", "find_space", "is_export_directory"]
