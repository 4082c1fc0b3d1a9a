"""Caption metrics: corpus BLEU-1..4, CIDEr-D, TF-IDF cosine (per image and per text pair), and
METEOR when WordNet is installed locally.

Every caption is tokenised with :func:`gemcaption.text.tokenize` (NFC, lower case, words are runs of
letters and digits with inner apostrophes, all other punctuation dropped, accents kept), so no nltk
data is downloaded. The COCO toolkit tokenises with the Stanford PTB tokenizer (Java) and then drops
punctuation; on plain English captions both give the same words, except that PTB splits
contractions ("dog's" -> "dog 's") where this keeps them whole.

BLEU is nltk's ``corpus_bleu`` without smoothing, the usual convention for published corpus-level
figures: if a hypothesis corpus has no matching n-gram of some order, BLEU at that order and above is 0.
CIDEr-D (Vedantam et al. 2015, as in the COCO caption toolkit) is implemented here, see :func:`cider_d`.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import EvaluationError
from ..text import tokenize
from ._checks import check_same_length

BLEU_WEIGHTS = {
    1: (1.0,),
    2: (0.5, 0.5),
    3: (1 / 3, 1 / 3, 1 / 3),
    4: (0.25, 0.25, 0.25, 0.25),
}


def _check_inputs(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> None:
    check_same_length("references", references, "hypotheses", hypotheses)
    if len(hypotheses) == 0:
        raise EvaluationError("no captions to score")
    if isinstance(hypotheses, str):
        raise EvaluationError("hypotheses must be a list of captions, not one string")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise EvaluationError(f"references[{i}] must be a non-empty list of captions")


def bleu(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> dict:
    """Corpus BLEU-1..4 in [0, 1] as ``bleu1``..``bleu4`` (no smoothing, cumulative uniform weights).

    ``references[i]`` is the list of reference captions of image i, ``hypotheses[i]`` its generated one.
    """
    from nltk.translate.bleu_score import corpus_bleu, modified_precision

    _check_inputs(references, hypotheses)
    refs = [[tokenize(r) for r in group] for group in references]
    hyps = [tokenize(h) for h in hypotheses]
    # nltk returns ~1e-77 instead of 0 when an order has no match; count matches to return an exact 0.
    matched = {n: sum(modified_precision(r, h, n).numerator for r, h in zip(refs, hyps)) for n in BLEU_WEIGHTS}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns when an n-gram order has no match
        for n, weights in BLEU_WEIGHTS.items():
            if any(matched[i] == 0 for i in range(1, n + 1)):
                out[f"bleu{n}"] = 0.0
            else:
                out[f"bleu{n}"] = float(corpus_bleu(refs, hyps, weights=weights))
    return out


def _ngram_counts(words: list[str], max_n: int) -> Counter:
    """Counts of every 1..max_n-gram of ``words`` (as tuples)."""
    return Counter(tuple(words[i : i + n]) for n in range(1, max_n + 1) for i in range(len(words) - n + 1))


def _tfidf_vector(counts: Counter, document_frequency: Counter, log_images: float, max_n: int):
    """Per n-gram order: the TF-IDF weights ``{ngram: tf * (log N - log max(1, df))}`` and their norm;
    and the caption's length, counted as its bigrams (the COCO toolkit's convention)."""
    weights: list[dict] = [{} for _ in range(max_n)]
    for gram, tf in counts.items():
        weights[len(gram) - 1][gram] = tf * (log_images - math.log(max(1.0, document_frequency[gram])))
    norms = [math.sqrt(sum(w * w for w in order.values())) for order in weights]
    length = sum(tf for gram, tf in counts.items() if len(gram) == 2)
    return weights, norms, length


def cider_d(references: Sequence[Sequence[str]], hypotheses: Sequence[str], max_n: int = 4, sigma: float = 6.0) -> dict:
    """Corpus CIDEr-D (Vedantam et al. 2015, the variant of the COCO caption toolkit) and per image.

    For each n = 1..``max_n``, a caption is a vector of n-gram TF-IDF weights: term frequency times
    ``log(N) - log(max(1, df))``, where N is the number of images and df the number of images whose
    references contain the n-gram (the IDF comes from the references being scored). The hypothesis'
    weights are clipped to the reference's (``min(h, r) * r``, so repeating a word earns nothing),
    the dot product divided by both norms and multiplied by the Gaussian length penalty
    ``exp(-(len_h - len_r)^2 / (2 sigma^2))`` (lengths counted as bigrams). An image's score is the
    mean over n and over its references, times 10; the corpus score (``cider_d``) is the mean over
    images (``cider_d_per_image``). The IDF depends on the set of images scored, so compare
    CIDEr-D figures only over the same references.
    """
    _check_inputs(references, hypotheses)
    refs = [[_ngram_counts(tokenize(r), max_n) for r in group] for group in references]
    hyps = [_ngram_counts(tokenize(h), max_n) for h in hypotheses]
    document_frequency: Counter = Counter()
    for group in refs:
        document_frequency.update(set().union(*group))
    log_images = math.log(float(len(refs)))
    per_image = []
    for hyp, group in zip(hyps, refs):
        h_weights, h_norms, h_len = _tfidf_vector(hyp, document_frequency, log_images, max_n)
        total = 0.0
        for ref in group:
            r_weights, r_norms, r_len = _tfidf_vector(ref, document_frequency, log_images, max_n)
            penalty = math.exp(-((h_len - r_len) ** 2) / (2 * sigma**2))
            for n in range(max_n):
                if h_norms[n] == 0 or r_norms[n] == 0:
                    continue
                r_n = r_weights[n]
                dot = sum(min(w, r_n[g]) * r_n[g] for g, w in h_weights[n].items() if g in r_n)
                total += penalty * dot / (h_norms[n] * r_norms[n])
        per_image.append(10.0 * total / (max_n * len(group)))
    return {"cider_d": float(np.mean(per_image)), "cider_d_per_image": per_image}


def _fitted_tfidf(texts: Sequence[str]):
    """A scikit-learn ``TfidfVectorizer`` (default smooth idf, l2-normalised rows, tokenizer
    :func:`gemcaption.text.tokenize`) fitted on ``texts``; :class:`EvaluationError` when they hold no word."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None)
    try:
        vectorizer.fit([str(t) for t in texts])
    except ValueError as err:  # empty vocabulary
        raise EvaluationError(f"TF-IDF needs at least one word in the captions: {err}") from err
    return vectorizer


def _row_cosines(vectorizer, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
    """Cosine of ``left[i]`` with ``right[i]`` for every i (rows are l2-normalised, so a dot product);
    a text with no known word has a zero vector and cosine 0."""
    a = vectorizer.transform([str(t) for t in left])
    b = vectorizer.transform([str(t) for t in right])
    return np.asarray(a.multiply(b).sum(axis=1)).ravel()


def pairwise_tfidf_cosine(
    references: Sequence[str], hypotheses: Sequence[str], corpus: Sequence[str] | None = None
) -> np.ndarray:
    """TF-IDF cosine of each (reference, hypothesis) pair: one value per pair, in [0, 1].

    ``references[i]`` and ``hypotheses[i]`` are single texts. The inverse document frequencies come
    from ``corpus`` (e.g. every class description) or, when it is None, from both lists together.
    Identical texts score 1, texts without a shared word 0. No pair gives an empty array.
    """
    references, hypotheses = [str(t) for t in references], [str(t) for t in hypotheses]
    check_same_length("references", references, "hypotheses", hypotheses)
    if not references:
        return np.zeros(0)
    vectorizer = _fitted_tfidf(list(corpus) if corpus is not None else references + hypotheses)
    return _row_cosines(vectorizer, references, hypotheses)


def tfidf_cosine(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> dict:
    """TF-IDF cosine between each generated caption and its references.

    The vectoriser of :func:`pairwise_tfidf_cosine` is fitted on all references plus all hypotheses.
    Returns ``tfidf_cosine``: mean over images of the best cosine over that image's references, and
    ``tfidf_cosine_mean``: mean over images of the mean cosine over its references. A caption with no
    known word has a zero vector and cosine 0.
    """
    _check_inputs(references, hypotheses)
    flat_refs = [r for group in references for r in group]
    owner = np.repeat(np.arange(len(references)), [len(g) for g in references])
    vectorizer = _fitted_tfidf(list(flat_refs) + list(hypotheses))
    # cosine of each reference with the hypothesis of its own image
    cosines = _row_cosines(vectorizer, flat_refs, [hypotheses[int(i)] for i in owner])
    best = np.full(len(references), -np.inf)
    np.maximum.at(best, owner, cosines)
    mean = np.bincount(owner, weights=cosines, minlength=len(references)) / np.bincount(owner)
    return {"tfidf_cosine": float(np.mean(best)), "tfidf_cosine_mean": float(np.mean(mean))}


def wordnet_available() -> bool:
    """True when nltk finds WordNet data locally (never downloads)."""
    import nltk

    for resource in ("corpora/wordnet", "corpora/wordnet.zip"):
        try:
            nltk.data.find(resource)
            return True
        except LookupError:
            continue
    return False


METEOR_UNAVAILABLE = (
    "METEOR not computed: nltk WordNet data is not installed locally "
    "(nltk.data.find('corpora/wordnet') failed; nothing is downloaded)"
)


def meteor(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str], wordnet: Any = None
) -> tuple[float | None, str]:
    """Mean nltk METEOR over images, or ``None`` when WordNet is not available locally.

    Returns ``(score or None, note)``. ``wordnet`` may be given (an object with nltk's WordNet reader
    interface); otherwise nltk's local WordNet is used if ``nltk.data.find`` finds it.
    """
    _check_inputs(references, hypotheses)
    if wordnet is None:
        if not wordnet_available():
            return None, METEOR_UNAVAILABLE
        import nltk.corpus

        wordnet = nltk.corpus.wordnet
    from nltk.translate.meteor_score import meteor_score

    scores = [
        meteor_score([tokenize(r) for r in refs], tokenize(hyp), wordnet=wordnet)
        for refs, hyp in zip(references, hypotheses)
    ]
    return float(np.mean(scores)), "METEOR: nltk meteor_score on gemcaption.text.tokenize tokens, mean over images"


def caption_metrics(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> dict:
    """BLEU-1..4, CIDEr-D, TF-IDF cosine (best and mean over references), METEOR (or None) and its note."""
    out = {**bleu(references, hypotheses), **tfidf_cosine(references, hypotheses)}
    out["cider_d"] = cider_d(references, hypotheses)["cider_d"]
    out["meteor"], out["meteor_note"] = meteor(references, hypotheses)
    out["n_images"] = len(hypotheses)
    return out
