"""CIDEr-D against values computed by hand and against the COCO caption toolkit's scorer."""

import math

import pytest

from gemcaption.evaluation import EvaluationError, caption_metrics, cider_d

L = math.log(2.0)  # log(N images) with N = 2; an n-gram seen in one image's references has idf log 2


def test_cider_d_by_hand():
    # image 0: hypothesis == its only reference: unigram and bigram cosines 1, no 3- or 4-grams,
    #   same length -> 10 * (1 + 1 + 0 + 0) / 4 = 5
    # image 1: "c" against "c d": unigram cosine L*L / (L * sqrt(2) L) = 1/sqrt(2), no bigram;
    #   lengths in bigrams 0 vs 1 -> penalty exp(-1 / (2 * 36)) -> 10 * penalty / (sqrt(2) * 4)
    out = cider_d([["a b"], ["c d"]], ["a b", "c"])
    second = 10 * math.exp(-1 / 72) / (math.sqrt(2) * 4)
    assert out["cider_d_per_image"] == pytest.approx([5.0, second])
    assert out["cider_d"] == pytest.approx((5.0 + second) / 2)


def test_cider_d_clips_repeated_words():
    # "a a" against "a b": hypothesis unigram weights {a: 2L}, reference {a: L, b: L};
    # clipped dot min(2L, L) * L = L^2, norms 2L and sqrt(2) L -> 1 / (2 sqrt 2) (unclipped: 1 / sqrt 2);
    # bigram "a a" is not in the reference; equal lengths -> no penalty
    out = cider_d([["a b"], ["c d"]], ["a a", "c d"])
    assert out["cider_d_per_image"][0] == pytest.approx(10 * (1 / (2 * math.sqrt(2))) / 4)


def test_cider_d_words_in_every_image_count_nothing():
    # "a" occurs in the references of both images: idf log 2 - log 2 = 0
    out = cider_d([["a b"], ["a c"]], ["a", "a"])
    assert out["cider_d_per_image"] == [0.0, 0.0]


def test_cider_d_averages_over_references_and_ignores_case_and_punctuation():
    one = cider_d([["a b"], ["c d"]], ["A, b!", "x"])["cider_d_per_image"][0]
    two = cider_d([["a b", "e f"], ["c d"]], ["a b", "x"])["cider_d_per_image"][0]
    assert one == pytest.approx(5.0)
    # the second reference shares nothing with the hypothesis: the mean over references halves it
    assert two == pytest.approx(2.5)


# Four images, three references each; the expected values are pycocoevalcap 1.2's
# ``Cider().compute_score`` (the COCO caption toolkit's CIDEr-D) on the same lower-cased,
# punctuation-free tokens (gemcaption.text.standardize applied to every caption).
TOOLKIT_REFERENCES = [
    ["A black dog is running on the grass.", "A dog runs across a green field.", "The black dog runs in the grass."],
    ["Two children are playing in the sand at the beach.", "Kids play on the beach.", "Two kids dig in the sand."],
    ["A man in a red shirt climbs a rock wall.", "A climber scales a rock face.", "A man is rock climbing."],
    ["A woman rides a bicycle down the street.", "A lady on a bike in the city.", "A woman cycling on a road."],
]
TOOLKIT_HYPOTHESES = [
    "A black dog runs on the grass.",
    "Two dogs play in the snow.",
    "A man climbs a rock.",
    "a woman a woman a woman",
]
TOOLKIT_PER_IMAGE = [3.3687018976596956, 0.6061746820085891, 2.024577743395872, 0.5204267366244427]
TOOLKIT_CORPUS = 1.62997026492215


def test_cider_d_matches_the_coco_toolkit():
    out = cider_d(TOOLKIT_REFERENCES, TOOLKIT_HYPOTHESES)
    assert out["cider_d_per_image"] == pytest.approx(TOOLKIT_PER_IMAGE, rel=1e-9)
    assert out["cider_d"] == pytest.approx(TOOLKIT_CORPUS, rel=1e-9)


def test_caption_metrics_reports_cider_d():
    figures = caption_metrics(TOOLKIT_REFERENCES, TOOLKIT_HYPOTHESES)
    assert figures["cider_d"] == pytest.approx(TOOLKIT_CORPUS, rel=1e-9)


def test_cider_d_rejects_bad_input():
    with pytest.raises(EvaluationError):
        cider_d([["a b"]], ["a", "b"])
    with pytest.raises(EvaluationError):
        cider_d([[]], ["a"])
