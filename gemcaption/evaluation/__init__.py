"""Evaluation metrics (numpy, scikit-learn, nltk only; no TensorFlow). Protocols: docs/evaluation.md."""
from ._checks import EvaluationError
from .captioning import bleu, caption_metrics, meteor, tfidf_cosine, wordnet_available
from .classification import classification_metrics, format_report, save_confusion_matrix_png
from .retrieval import (aggregate_max, category_retrieval_metrics, chance_levels_one_query, format_retrieval_table,
                        retrieval_metrics, same_item_relevance, same_label_relevance)

__all__ = [
    "EvaluationError",
    "aggregate_max", "category_retrieval_metrics", "chance_levels_one_query", "format_retrieval_table",
    "retrieval_metrics",
    "same_item_relevance", "same_label_relevance",
    "bleu", "caption_metrics", "meteor", "tfidf_cosine", "wordnet_available",
    "classification_metrics", "format_report", "save_confusion_matrix_png",
]
