import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep feature caches and converted weights of the test run out of the user's cache."""
    previous = os.environ.get("GEMCAPTION_CACHE")
    os.environ["GEMCAPTION_CACHE"] = str(tmp_path_factory.mktemp("gemcaption-cache"))
    yield
    if previous is None:
        os.environ.pop("GEMCAPTION_CACHE", None)
    else:
        os.environ["GEMCAPTION_CACHE"] = previous
