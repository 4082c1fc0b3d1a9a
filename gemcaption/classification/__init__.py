"""Gemstone classification: the seed paper's VAE, honest baselines (Random Forest / SVM on colour
histogram + LBP, logistic regression / SVM on EfficientNet features, a CNN head, a semi-supervised
GAN) and :class:`GemClassifier`, which predicts a class and describes the stone in words."""
from .base import MODEL_KINDS, load_model_dir
from .baselines import DescriptorClassifier
from .classifier import GemClassifier, Prediction, describe_label, make_model
from .descriptors import color_histogram, handcrafted_features, lbp_codes, lbp_histogram
from .similarity import tfidf_cosine
from .splits import find_duplicates, stratified_split

__all__ = [
    "GemClassifier", "Prediction", "make_model", "describe_label", "DescriptorClassifier",
    "MODEL_KINDS", "load_model_dir", "color_histogram", "lbp_codes", "lbp_histogram",
    "handcrafted_features", "tfidf_cosine", "find_duplicates", "stratified_split",
]
