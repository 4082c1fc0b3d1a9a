"""Evaluation metrics against values computed by hand on tiny examples."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gemcaption.evaluation import (
    EvaluationError,
    aggregate_max,
    bleu,
    caption_metrics,
    captioning,
    category_retrieval_metrics,
    chance_levels_one_query,
    classification_metrics,
    format_report,
    format_retrieval_table,
    meteor,
    pairwise_tfidf_cosine,
    retrieval_metrics,
    same_item_relevance,
    same_label_relevance,
    save_confusion_matrix_png,
    tfidf_cosine,
)

# ---------------------------------------------------------------- retrieval

# 4 queries, 4 gallery items. Rankings (stable ties by gallery index):
#   q0: 0,1,2,3  relevant {1,3} -> ranks 2,4   AP = (1/2 + 2/4)/2 = 1/2,   first 2
#   q1: 3,1,2,0  relevant {2}   -> rank 3 (1 and 2 tie; 1 comes first)  AP = 1/3, first 3
#   q2: 0,2,1,3  relevant {0,2} -> ranks 1,2   AP = 1,                   first 1
#   q3: no relevant item -> skipped
SCORES = np.array([[0.9, 0.8, 0.7, 0.1], [0.2, 0.5, 0.5, 0.9], [0.3, 0.1, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4]])
RELEVANT = np.array([[0, 1, 0, 1], [0, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)


def test_retrieval_metrics_by_hand():
    m = retrieval_metrics(SCORES, RELEVANT)
    assert m["n_queries"] == 3 and m["n_skipped"] == 1 and m["gallery_size"] == 4
    assert m["map"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert m["medr"] == 2
    assert m["r1"] == pytest.approx(1 / 3)
    assert m["r5"] == 1.0 and m["r10"] == 1.0
    assert m["p10"] == pytest.approx((2 + 1 + 2) / 30)


def test_retrieval_chance_levels_by_hand():
    m = retrieval_metrics(SCORES, RELEVANT)
    # n = 4; R = 2 twice and R = 1 once. Random AP for R=2 of 4, enumerating the 6 placements:
    ap_two = (
        1 + (1 + 2 / 3) / 2 + (1 + 2 / 4) / 2 + (1 / 2 + 2 / 3) / 2 + (1 / 2 + 2 / 4) / 2 + (1 / 3 + 2 / 4) / 2
    ) / 6
    ap_one = (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4
    assert m["chance_map"] == pytest.approx((2 * ap_two + ap_one) / 3)
    rr_two = 3 / 6 * 1 + 2 / 6 * 1 / 2 + 1 / 6 * 1 / 3
    assert m["chance_mrr"] == pytest.approx((2 * rr_two + ap_one) / 3)
    assert m["chance_r1"] == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    assert m["chance_r5"] == 1.0
    assert m["chance_p10"] == pytest.approx((0.2 + 0.1 + 0.2) / 3)
    # pooled P(first <= 1) = (0.5 + 0.5 + 0.25) / 3 < 1/2, P(first <= 2) > 1/2
    assert m["chance_medr"] == 2


def test_retrieval_table_puts_chance_beside_each_figure():
    lines = format_retrieval_table(retrieval_metrics(SCORES, RELEVANT), "toy").splitlines()
    assert lines[0] == "toy"
    row = next(line for line in lines if line.startswith("mAP"))
    chance_map = retrieval_metrics(SCORES, RELEVANT)["chance_map"]
    assert row.split()[1:] == [f"{(1 / 2 + 1 / 3 + 1) / 3:.4f}", f"{chance_map:.4f}"]
    assert any(line.startswith("median rank") for line in lines)
    assert "1 skipped" in lines[-1]


def test_chance_levels_one_query_closed_forms():
    one = chance_levels_one_query(100, 1)
    assert one["r1"] == pytest.approx(0.01)
    assert one["r10"] == pytest.approx(0.10)
    assert one["medr"] == 50.5
    harmonic = sum(1 / i for i in range(1, 101))
    assert one["map"] == pytest.approx(harmonic / 100)
    assert one["mrr"] == pytest.approx(harmonic / 100)
    assert chance_levels_one_query(1, 1)["map"] == 1.0
    with pytest.raises(EvaluationError):
        chance_levels_one_query(3, 0)


def test_chance_levels_match_monte_carlo():
    rng = np.random.default_rng(1234)
    labels = rng.integers(0, 6, size=60)  # several relevant items per query, varying R
    trials = [category_retrieval_metrics(rng.random((60, 60)), list(labels)) for _ in range(150)]
    expected = trials[0]
    for key in ("r1", "r5", "r10", "p10", "map", "mrr"):
        mean = np.mean([t[key] for t in trials])
        spread = np.std([t[key] for t in trials]) / math.sqrt(len(trials))
        assert abs(mean - expected[f"chance_{key}"]) < 4 * spread + 1e-3, key
    assert abs(np.mean([t["medr"] for t in trials]) - expected["chance_medr"]) <= 1.0


def test_ties_are_broken_by_gallery_index():
    scores = np.zeros((1, 5))
    m_first = retrieval_metrics(scores, np.array([[1, 0, 0, 0, 0]], bool))
    m_last = retrieval_metrics(scores, np.array([[0, 0, 0, 0, 1]], bool))
    assert m_first["medr"] == 1 and m_first["map"] == 1.0
    assert m_last["medr"] == 5 and m_last["map"] == pytest.approx(0.2)


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(37, 23)).astype(np.float32)
    relevant = rng.random((37, 23)) < 0.1
    assert retrieval_metrics(scores, relevant, chunk_size=5) == retrieval_metrics(scores, relevant)


def test_all_queries_skipped_and_bad_input_raise():
    with pytest.raises(EvaluationError):
        retrieval_metrics(np.zeros((2, 3)), np.zeros((2, 3), bool))
    with pytest.raises(EvaluationError):
        retrieval_metrics(np.array([[np.nan, 1.0]]), np.array([[True, False]]))
    with pytest.raises(EvaluationError):
        retrieval_metrics(np.zeros((2, 3)), np.ones((3, 2), bool))
    with pytest.raises(EvaluationError):
        retrieval_metrics(np.zeros(3), np.ones(3, bool))


def test_same_item_relevance():
    relevant = same_item_relevance(["a.jpg", "b.jpg"], ["b.jpg", "a.jpg", "a.jpg", "c.jpg"])
    assert relevant.tolist() == [[False, True, True, False], [True, False, False, False]]


def test_leave_one_out_excludes_the_query_itself():
    labels = ["x", "x", "y", "y", "x"]
    # self-similarity is the highest score of each row: if it were ranked it would sit at rank 1.
    scores = np.array(
        [[9, 1, 5, 4, 2], [1, 9, 3, 2, 4], [5, 3, 9, 1, 2], [4, 2, 1, 9, 3], [2, 4, 3, 1, 9]], dtype=float
    )
    m = category_retrieval_metrics(scores, labels)
    # q0 others ranked 2(y),3(y),4(x),1(x): AP=(1/3+2/4)/2   q1: 4(x),2,3,0(x): AP=(1+2/4)/2
    # q2 others 0,1,4,3(y): AP=1/4   q3 others 0,4,1,2(y): AP=1/4   q4: 1(x),2,0(x),3: AP=(1+2/3)/2
    aps = [(1 / 3 + 2 / 4) / 2, (1 + 2 / 4) / 2, 1 / 4, 1 / 4, (1 + 2 / 3) / 2]
    assert m["map"] == pytest.approx(np.mean(aps))
    assert m["medr"] == 3  # first ranks 3, 1, 4, 4, 1
    assert m["chance_r1"] == pytest.approx((2 / 4 * 3 + 1 / 4 * 2) / 5)  # gallery of 4 others
    masked = same_label_relevance(labels, labels)
    assert masked.mask.diagonal().all() and not masked.filled(False).diagonal().any()
    # same result through an explicit exclude mask
    explicit = retrieval_metrics(
        scores, same_label_relevance(labels, labels, exclude_self=False), exclude=np.eye(5, dtype=bool)
    )
    assert explicit == m
    with pytest.raises(EvaluationError):
        same_label_relevance(["a"], ["a", "b"], exclude_self=True)


def test_excluded_items_rank_after_minus_infinity():
    scores = np.array([[-np.inf, 0.5, 0.1]])
    relevant = np.array([[True, False, False]])
    m = retrieval_metrics(scores, relevant, exclude=np.array([[False, True, False]]))
    assert m["medr"] == 2 and m["chance_r1"] == pytest.approx(0.5)


def test_aggregate_max():
    scores = np.array([[0.1, 0.7, 0.3, 0.2, 0.9], [0.5, 0.0, 0.4, 0.8, 0.1]])
    merged, items = aggregate_max(scores, ["b", "a", "b", "c", "a"], return_items=True)
    assert items == ["b", "a", "c"]
    np.testing.assert_allclose(merged, [[0.3, 0.9, 0.2], [0.5, 0.1, 0.8]])
    with pytest.raises(EvaluationError):
        aggregate_max(scores, ["a", "b"])


# ---------------------------------------------------------------- captioning


def test_bleu_identical_is_one():
    refs = [["A dog runs on the grass.", "a dog outside"], ["two children play in a park"]]
    hyps = ["a dog runs on the grass", "Two children play in a park!"]
    assert bleu(refs, hyps) == {"bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 1.0}


def test_bleu1_with_brevity_penalty_by_hand():
    # all 3 unigrams match; hypothesis 3 words vs reference 6 -> BP = exp(1 - 6/3)
    m = bleu([["a dog runs fast on grass"]], ["a dog runs"])
    assert m["bleu1"] == pytest.approx(math.exp(-1))
    assert m["bleu4"] == 0.0  # no 4-gram in the hypothesis: exactly 0, not nltk's 1e-77


def test_bleu2_and_corpus_level_by_hand():
    m = bleu([["a dog runs on grass"]], ["a dog runs on sand"])
    assert m["bleu1"] == pytest.approx(4 / 5)
    assert m["bleu2"] == pytest.approx(math.sqrt(4 / 5 * 3 / 4))
    # corpus level pools counts: (4 + 1) / (4 + 2), not the mean of 1 and 1/2
    m = bleu([["a b c d"], ["x z"]], ["a b c d", "x y"])
    assert m["bleu1"] == pytest.approx(5 / 6)


def test_tfidf_cosine_identical_disjoint_best_and_mean():
    assert tfidf_cosine([["a red ruby ring"]], ["A red ruby ring."])["tfidf_cosine"] == pytest.approx(1.0)
    assert tfidf_cosine([["a red ruby ring"]], ["blue sapphire"])["tfidf_cosine"] == pytest.approx(0.0)
    m = tfidf_cosine([["red ruby", "blue sapphire"]], ["red ruby"])
    assert m["tfidf_cosine"] == pytest.approx(1.0)
    assert m["tfidf_cosine_mean"] == pytest.approx(0.5)


def test_pairwise_tfidf_cosine_by_hand():
    # idf = ln((1 + n) / (1 + df)) + 1 over the 2 texts: red 1, ruby and sapphire ln(3/2) + 1
    rare = math.log(3 / 2) + 1
    scores = pairwise_tfidf_cosine(["red ruby"], ["Red sapphire!"])
    assert scores.shape == (1,) and scores[0] == pytest.approx(1 / (1 + rare**2))
    scores = pairwise_tfidf_cosine(
        ["a red ruby ring", "green beryl", "red corundum"], ["A red ruby ring.", "blue sapphire", "red corundum"]
    )
    assert scores == pytest.approx([1.0, 0.0, 1.0])


def test_pairwise_tfidf_cosine_idf_from_a_corpus():
    own = pairwise_tfidf_cosine(["red ruby"], ["red sapphire"])[0]
    # in a corpus where "red" is rare and "ruby"/"sapphire" common, the shared word weighs more
    corpus = ["red ruby"] + ["ruby", "sapphire"] * 5
    weighted = pairwise_tfidf_cosine(["red ruby"], ["red sapphire"], corpus=corpus)[0]
    assert weighted > own + 0.2
    assert pairwise_tfidf_cosine(["red"], ["ruby"], corpus=["emerald"])[0] == 0.0  # words unknown to the corpus


def test_pairwise_and_corpus_tfidf_agree_on_single_references():
    references = ["a red ruby ring", "a blue sapphire pendant", "green emerald earrings", "a gold ring"]
    hypotheses = ["a red ring", "a blue pendant", "emerald earrings in gold", "a gold ring"]
    pairs = pairwise_tfidf_cosine(references, hypotheses)
    corpus = tfidf_cosine([[r] for r in references], hypotheses)
    assert corpus["tfidf_cosine"] == pytest.approx(float(np.mean(pairs)))
    assert corpus["tfidf_cosine_mean"] == pytest.approx(float(np.mean(pairs)))


def test_pairwise_tfidf_cosine_inputs_are_checked():
    assert pairwise_tfidf_cosine([], []).shape == (0,)
    with pytest.raises(EvaluationError, match="references has 2 entries but hypotheses has 1"):
        pairwise_tfidf_cosine(["a", "b"], ["a"])
    with pytest.raises(EvaluationError, match="at least one word"):
        pairwise_tfidf_cosine(["!"], ["?"])


def test_meteor_is_none_without_local_wordnet(monkeypatch):
    monkeypatch.setattr(captioning, "wordnet_available", lambda: False)
    score, note = meteor([["a dog"]], ["a dog"])
    assert score is None and "WordNet" in note
    m = caption_metrics([["a dog runs"]], ["a dog runs"])
    assert m["meteor"] is None and m["meteor_note"] == note
    assert m["bleu1"] == 1.0 and m["tfidf_cosine"] == pytest.approx(1.0) and m["n_images"] == 1


def test_meteor_with_a_supplied_wordnet():
    class NoSynonyms:
        def synsets(self, word):
            return []

    score, _ = meteor([["a dog runs on grass"]], ["a dog runs on grass"], wordnet=NoSynonyms())
    # one chunk of 5 matches: penalty 0.5 * (1/5)^3 = 0.004
    assert score == pytest.approx(0.996)


def test_caption_inputs_are_checked():
    with pytest.raises(EvaluationError):
        bleu([["a"]], ["a", "b"])
    with pytest.raises(EvaluationError):
        tfidf_cosine(["a dog"], ["a dog"])  # references must be lists of captions
    with pytest.raises(EvaluationError):
        caption_metrics([], [])


# ---------------------------------------------------------------- classification


def test_classification_metrics_by_hand():
    m = classification_metrics(["a", "b", "a", "c"], ["a", "a", "a", "c"])
    assert m["labels"] == ["a", "b", "c"]
    assert m["confusion_matrix"] == [[2, 0, 0], [1, 0, 0], [0, 0, 1]]
    assert m["accuracy"] == 0.75
    assert m["chance_accuracy"] == pytest.approx(1 / 3) and m["majority_accuracy"] == 0.5
    # a: P = 2/3, R = 1, F1 = 0.8; b: all 0 (zero division -> 0); c: all 1
    assert m["macro_precision"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert m["macro_recall"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 0 + 1) / 3)
    assert m["weighted_f1"] == pytest.approx((0.8 * 2 + 0 + 1) / 4)
    assert m["per_class"][0] == {
        "label": "a",
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": pytest.approx(0.8),
        "support": 2,
    }
    json.dumps(m)


def test_classification_label_list_and_errors():
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), labels=[0, 1, 2])
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert m["macro_f1"] == pytest.approx(2 / 3)  # the absent class counts as 0
    json.dumps(m)
    with pytest.raises(EvaluationError):
        classification_metrics(["a", "z"], ["a", "a"], labels=["a", "b"])
    with pytest.raises(EvaluationError):
        classification_metrics(["a"], ["a", "b"])


def test_format_report_lists_every_class():
    text = format_report(classification_metrics(["ruby", "opal", "ruby"], ["ruby", "ruby", "ruby"]))
    lines = text.splitlines()
    assert any(line.startswith("ruby") and "0.667" in line for line in lines)
    assert any(line.startswith("macro avg") for line in lines)
    assert "accuracy" in text and "0.667" in text
    assert lines[-1] == "(chance accuracy 0.500 uniform, 0.667 majority class)"


def test_confusion_matrix_png(tmp_path):
    small = save_confusion_matrix_png([[2, 0], [0, 0]], ["a", "b"], tmp_path / "small.png")
    labels = [f"Gemstone class {i}" for i in range(68)]
    rng = np.random.default_rng(0)
    big = save_confusion_matrix_png(rng.integers(0, 5, (68, 68)), labels, tmp_path / "sub" / "big.png", normalize=False)
    with Image.open(small) as a, Image.open(big) as b:
        assert a.format == b.format == "PNG"
        assert b.size[0] > 2 * a.size[0]
    with pytest.raises(EvaluationError):
        save_confusion_matrix_png([[1, 2]], ["a", "b"], tmp_path / "bad.png")


def test_evaluation_does_not_import_tensorflow():
    code = "import sys, gemcaption.evaluation; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
