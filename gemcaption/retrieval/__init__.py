"""Retrieval: search images by image or by text.

It owns the :class:`~gemcaption.retrieval.retriever.Retriever` facade (caption, embed, index,
search, save), the vector index over FAISS with stable ids (``vector_index``), the per-image
records kept in SQLite (``metadata``), the caption embedders (``embedders``) and the rule that
tells an image query from a text query (``queries``), and ``sync``, which brings an index in line
with a folder (``Retriever.sync``, :class:`~gemcaption.retrieval.sync.SyncReport`). It uses a captioner from
:mod:`gemcaption.captioning` to caption images and never trains one.
"""
