"""Captioning: everything that turns an image into words.

It owns the :class:`~gemcaption.captioning.captioner.Captioner` facade and what it is made of:
image encoders (``encoders/``: EfficientNetB0, EfficientNet-Lite0 and where their weights come
from), caption decoders (``decoders/``: Transformer and LSTM), the per-image feature cache
(``features``), the caption vocabulary, training (batches, warm-up schedule, early stopping,
augmentation) and decoding strategies (``samplers/``: greedy and beam search as objects). It reads
images through :mod:`gemcaption.data` and knows nothing of retrieval or classification.
"""
