"""The seed's caption score: TF-IDF cosine similarity between a generated and a reference text."""
from __future__ import annotations

import numpy as np

from ..text import tokenize


def tfidf_cosine(generated, references, corpus=None) -> np.ndarray:
    """Cosine similarity of TF-IDF vectors, one value per (generated, reference) pair.

    The inverse document frequencies come from ``corpus`` (e.g. every class description) or, when
    it is None, from the generated and reference texts together. Identical texts score 1, texts
    without a shared word score 0.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    generated, references = [str(t) for t in generated], [str(t) for t in references]
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated texts but {len(references)} references")
    if not generated:
        return np.zeros(0)
    vectorizer = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None)
    vectorizer.fit(list(corpus) if corpus is not None else generated + references)
    a = vectorizer.transform(generated)  # rows are L2-normalised
    b = vectorizer.transform(references)
    return np.asarray(a.multiply(b).sum(axis=1)).ravel()
