"""Getting a Dask client: to a running scheduler, or to a local cluster of worker processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import ConfigError

INSTALL_HINT = 'distributed builds need Dask: pip install "gemcaption[distributed]"'


def require_dask() -> None:
    """Raise ConfigError with the install command when Dask distributed is not installed."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2) -> Iterator:
    """A ``distributed.Client`` to ``scheduler`` (an address such as ``tcp://10.0.0.5:8786``) or, when
    it is None, to a new local cluster of ``workers`` processes of one thread each (closed at the end)."""
    require_dask()
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            yield client
        return
    if workers < 1:
        raise ConfigError("workers must be at least 1")
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        yield client
