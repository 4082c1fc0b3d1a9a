"""Running gemcaption's batch work on a Dask cluster.

This package owns the distributed ``gemcaption index build`` (:func:`build_index`): it connects to a
Dask scheduler (``scheduler="tcp://host:8786"``) or starts a local cluster of worker processes
(:mod:`.cluster`), cuts the image list into fixed-size shards named by position and by a hash of
their paths and of the build settings (:mod:`.plan`), has each worker caption and embed its shards
exactly as :meth:`Retriever.add <gemcaption.retrieval.retriever.Retriever.add>` does (the
``prepare`` half, reading and writing the feature cache; :mod:`.tasks`), keeps each finished shard as
plain ``.npy`` + JSON files in a work folder ``<index dir>.parts/`` (:mod:`.parts`), and assembles a
normal index directory that :meth:`Retriever.load` and ``gemcaption serve`` open (:mod:`.build`;
with an IVF-PQ factory, or ``auto`` for a million images or more, its vector index is the on-disk
one of :mod:`gemcaption.retrieval.sharded_index`, built from embedding shards).
A shard whose task failed, or whose worker died, is reported; running the same build again skips
the finished shards and computes only the others. Dask is an optional extra:
``pip install "gemcaption[distributed]"``.
"""

from .build import BuildReport, build_index
from .cluster import require_dask

__all__ = ["BuildReport", "build_index", "require_dask"]
