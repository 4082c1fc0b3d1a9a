"""Evaluation: the metrics and protocols that score captions, rankings and classifiers.

It owns caption metrics (``captioning``: corpus BLEU-1..4, CIDEr-D, TF-IDF cosine per image and per text pair,
METEOR), ranking metrics with their chance levels (``retrieval``), classification metrics, report
and confusion-matrix picture (``classification``), and the protocols behind ``gemcaption evaluate``
(``protocols``, text in docs/evaluation.md). numpy, scikit-learn and nltk only: no TensorFlow; inputs
that do not fit raise :class:`~gemcaption.errors.EvaluationError`.
"""

from ..errors import EvaluationError
from .captioning import bleu, caption_metrics, cider_d, meteor, pairwise_tfidf_cosine, tfidf_cosine, wordnet_available
from .classification import classification_metrics, format_report, save_confusion_matrix_png
from .retrieval import (
    aggregate_max,
    category_retrieval_metrics,
    chance_levels_one_query,
    format_retrieval_table,
    retrieval_metrics,
    same_item_relevance,
    same_label_relevance,
)

__all__ = [
    "EvaluationError",
    "aggregate_max",
    "category_retrieval_metrics",
    "chance_levels_one_query",
    "format_retrieval_table",
    "retrieval_metrics",
    "same_item_relevance",
    "same_label_relevance",
    "bleu",
    "caption_metrics",
    "cider_d",
    "meteor",
    "pairwise_tfidf_cosine",
    "tfidf_cosine",
    "wordnet_available",
    "classification_metrics",
    "format_report",
    "save_confusion_matrix_png",
]
