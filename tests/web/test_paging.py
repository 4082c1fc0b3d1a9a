"""Paging (offset/k), the label filter, the index's labels and the "no known word" answer of the web API."""

import io

import pytest
from fakes import FakeCaptioner, png_bytes

from gemcaption.retrieval.metadata import Record
from gemcaption.retrieval.retriever import Hit
from gemcaption.web import create_app
from gemcaption.web.paging import NO_KNOWN_WORD, index_labels, no_known_word, result_page

LABELS = ("ruby", "sapphire", "emerald")


class RankingRetriever:
    """Ten items ranked by id (score 1 - id/100); item i is labelled LABELS[i % 3]; knows only "stone"."""

    def __init__(self, size=10):
        self.captioner = FakeCaptioner()
        self.records = {i: Record(i, None, f"h{i}", f"stone {i}", (), LABELS[i % 3]) for i in range(size)}
        self.asked = []

    def __len__(self):
        return len(self.records)

    @property
    def ids(self):
        return sorted(self.records)

    def get(self, item_id):
        return self.records[int(item_id)]

    def knows_words(self, text):
        return "stone" in text.lower().split()

    def search_text(self, text, k=10):
        self.asked.append(k)
        return [Hit(r.id, None, 1 - r.id / 100, r.caption, (), r.label) for r in self.records.values()][:k]

    def search_image(self, image, k=10):
        return self.search_text("stone", k)


@pytest.fixture
def fake():
    return RankingRetriever()


@pytest.fixture
def client(fake):
    return create_app(fake, default_k=3).test_client()


def test_pages_follow_each_other_without_overlap_or_gap(fake):
    pages = [result_page(lambda n: fake.search_text("stone", n), 3, offset, 10) for offset in (0, 3, 6, 9)]
    assert [hit.id for hits, _ in pages for hit in hits] == list(range(10))
    assert [more for _, more in pages] == [True, True, True, False]
    assert fake.asked == [4, 7, 10, 10]  # one more than the page (is there a next one?), at most the index
    assert result_page(lambda n: [], 3, 0, 0) == ([], False)


def test_the_label_filter_widens_the_search_until_the_page_is_full():
    hits = [Hit(i, None, 1 - i / 10_000, f"stone {i}", (), "rare" if i % 100 == 0 else "common") for i in range(1000)]
    asked = []

    def search(n):
        asked.append(n)
        return hits[:n]

    page, more = result_page(search, 2, 3, len(hits), label="rare")
    assert [hit.id for hit in page] == [300, 400] and more
    assert asked == [64, 128, 256, 512]  # doubled until 6 rare hits were found
    asked.clear()
    page, more = result_page(search, 5, 8, len(hits), label="rare")
    assert [hit.id for hit in page] == [800, 900] and not more and asked[-1] == 1000


def test_api_pages_with_offset_and_continuing_ranks(client):
    first = client.post("/api/search", json={"text": "stone"}).get_json()
    assert first["k"] == 3 and first["offset"] == 0 and first["has_more"] is True
    assert [(hit["rank"], hit["id"]) for hit in first["results"]] == [(1, 0), (2, 1), (3, 2)]
    last = client.post("/api/search", json={"text": "stone", "k": 4, "offset": 8}).get_json()
    assert [(hit["rank"], hit["id"]) for hit in last["results"]] == [(9, 8), (10, 9)]
    assert last["has_more"] is False and "label" not in last
    beyond = client.post("/api/search", json={"text": "stone", "offset": 50}).get_json()
    assert beyond["results"] == [] and beyond["has_more"] is False


def test_api_filters_by_label_across_pages(client):
    data = client.post("/api/search", json={"text": "stone", "label": "ruby", "k": 2, "offset": 2}).get_json()
    assert data["label"] == "ruby"
    assert [hit["id"] for hit in data["results"]] == [6, 9]
    assert {hit["label"] for hit in data["results"]} == {"ruby"} and data["has_more"] is False
    by_id = client.post("/api/search", json={"id": 4, "label": "sapphire", "k": 2}).get_json()
    assert [hit["id"] for hit in by_id["results"]] == [1, 4] and by_id["has_more"] is True
    nothing = client.post("/api/search", json={"text": "stone", "label": "opal"}).get_json()
    assert nothing["results"] == [] and nothing["has_more"] is False


def test_an_upload_pages_and_filters_through_form_fields(client):
    form = {"image": (io.BytesIO(png_bytes("red")), "q.png"), "k": "2", "offset": "1", "label": "emerald"}
    response = client.post("/api/search", data=form, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert [(hit["rank"], hit["id"]) for hit in data["results"]] == [(2, 5), (3, 8)]
    assert data["offset"] == 1 and data["label"] == "emerald" and data["has_more"] is False


@pytest.mark.parametrize(
    "body, message",
    [
        ({"text": "stone", "offset": -1}, "between 0 and"),
        ({"text": "stone", "offset": 1.5}, "whole number"),
        ({"text": "stone", "offset": "3"}, "whole number"),
        ({"text": "stone", "offset": 10**6}, "between 0 and"),
        ({"text": "stone", "label": 5}, "label must be a string"),
        ({"text": "stone", "label": "x" * 300}, "at most"),
        ({"text": ""}, "empty"),
    ],
)
def test_bad_paging_and_filter_values_get_one_clear_400(client, body, message):
    response = client.post("/api/search", json=body)
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_bad_form_offset_gets_400(client):
    form = {"image": (io.BytesIO(png_bytes("red")), "q.png"), "offset": "-2"}
    response = client.post("/api/search", data=form, content_type="multipart/form-data")
    assert response.status_code == 400 and "offset" in response.get_json()["error"]


def test_a_query_of_unknown_words_says_so_instead_of_returning_hits(client, fake):
    response = client.post("/api/search", json={"text": "zzxq qqq"})
    assert response.status_code == 200
    data = response.get_json()
    assert data["results"] == [] and data["has_more"] is False
    assert data["warning"] == NO_KNOWN_WORD and data["known_words"] == 0
    assert fake.asked == []  # not searched at all
    known = client.post("/api/search", json={"text": "a stone"}).get_json()
    assert "warning" not in known and "known_words" not in known and known["results"]


def test_an_empty_index_answers_no_results_without_a_warning():
    data = create_app(RankingRetriever(size=0)).test_client().post("/api/search", json={"text": "zzxq"}).get_json()
    assert data["results"] == [] and data["has_more"] is False and "warning" not in data


def test_a_real_index_answers_unknown_words_with_the_warning(tmp_path):
    from gemcaption.retrieval.retriever import Retriever

    image = tmp_path / "red.png"
    image.write_bytes(png_bytes("red"))
    retriever = Retriever(FakeCaptioner(), progress=False).build([str(image)], captions=[["a ruby ring"]])
    client = create_app(retriever).test_client()
    unknown = client.post("/api/search", json={"text": "zzxq"}).get_json()
    assert unknown["warning"] == NO_KNOWN_WORD and unknown["results"] == []
    assert client.post("/api/search", json={"text": "ruby"}).get_json()["results"][0]["id"] == 0


def test_pages_of_a_real_index_with_ties_add_up_to_the_whole_ranking(tmp_path):
    from fakes import make_image

    from gemcaption.retrieval.retriever import Retriever

    images = [make_image(tmp_path / f"{i}.png", (200, 30, 30) if i % 2 else (30, 30, 200), seed=i) for i in range(8)]
    retriever = Retriever(FakeCaptioner(), progress=False).build(images, captions=[["a stone"]] * 8)
    client = create_app(retriever).test_client()
    whole = client.post("/api/search", json={"text": "red stone", "k": 8}).get_json()["results"]
    pages = [client.post("/api/search", json={"text": "red stone", "k": 3, "offset": o}).get_json() for o in (0, 3, 6)]
    paged = [hit for page in pages for hit in page["results"]]
    assert [(h["rank"], h["id"]) for h in paged] == [(h["rank"], h["id"]) for h in whole]
    assert len({h["id"] for h in paged}) == 8 and [p["has_more"] for p in pages] == [True, True, False]
    assert len({h["score"] for h in whole}) < 8  # there are ties, and they did not reorder between pages


def test_an_embedder_word_count_decides_when_it_has_one():
    class Embedder:
        def known_words(self, text):
            return sum(word == "anillo" for word in text.split())

    class Indexed:
        embedder = Embedder()

        def knows_words(self, text):  # would say yes to anything: the count wins
            return True

    assert no_known_word(Indexed(), "zzxq") and not no_known_word(Indexed(), "anillo de plata")
    assert not no_known_word(object(), "zzxq")  # cannot tell: search as usual


def test_the_labels_of_the_index_are_listed_and_offered_as_a_filter(client, fake):
    assert index_labels(fake) == [
        {"label": "emerald", "count": 3},
        {"label": "ruby", "count": 4},
        {"label": "sapphire", "count": 3},
    ]
    assert client.get("/api/info").get_json()["labels"] == index_labels(fake)
    page = client.get("/").get_data(as_text=True)
    assert 'id="label-filter"' in page and '<option value="ruby">ruby (4)</option>' in page
    assert "Results per page" in page and ">k <" not in page
    for record in fake.records.values():
        object.__setattr__(record, "label", None)
    assert index_labels(fake) == []
    assert 'id="label-filter"' not in client.get("/").get_data(as_text=True)


def test_unknown_routes_and_images_answer_json_404(client):
    for path in ("/images/5", "/images/12345", "/nowhere", "/api/nowhere", "/static/nothing.js"):
        response = client.get(path)
        assert response.status_code == 404 and response.is_json, path
        assert response.get_json()["error"]
