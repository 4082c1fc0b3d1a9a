"""A self-contained HTML report: thumbnails and the loss curve are embedded as base64, so the one
file can be opened, mailed or archived without the images it shows.

>>> write_report("demo-report/index.html", title="gemcaption demo", summary={"images": 480},
...              metrics=[MetricRow("Image search R@1", 0.81, 0.15)], history=captioner.history,
...              image_queries=[...], text_queries=[...])
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.images import ImageSource, load_image
from ..errors import ImageError
from ..persistence import PathLike, atomic_write_text

THUMBNAIL_PIXELS = 112


@dataclass(frozen=True)
class MetricRow:
    """One line of the metrics table; ``chance`` is what a random ranking would score (or None)."""

    name: str
    value: float | None
    chance: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Neighbour:
    """One search hit shown in the report."""

    image: str | None
    caption: str
    score: float
    relevant: bool | None = None  # shown as a tick / cross when known


@dataclass(frozen=True)
class QueryResult:
    """A query (an image with its generated and true captions, or a text) and its top hits."""

    neighbours: list[Neighbour]
    image: str | None = None
    text: str | None = None
    generated: str | None = None
    references: tuple[str, ...] = field(default_factory=tuple)
    label: str | None = None


def thumbnail_data_uri(source: ImageSource, size: int = THUMBNAIL_PIXELS) -> str:
    """A ``data:image/jpeg;base64,...`` URI of a thumbnail of ``source`` (empty string if unreadable)."""
    try:
        image = load_image(source)
    except ImageError:
        return ""
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def loss_curve_png(history: dict, dpi: int = 90) -> bytes:
    """PNG bytes of training (and validation) loss per epoch from a ``Captioner.fit`` history."""
    from ..plotting import figure_png, pyplot

    figure = pyplot().figure(figsize=(5.5, 3.2), dpi=dpi)
    axes = figure.add_subplot()
    for key, label in (("loss", "training loss"), ("val_loss", "validation loss")):
        values = history.get(key) or []
        if values:
            axes.plot(range(1, len(values) + 1), values, marker="o", label=label)
    best = history.get("best_epoch")
    if best:
        axes.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
    axes.set_xlabel("epoch")
    axes.set_ylabel("masked cross-entropy")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
    figure.tight_layout()
    return figure_png(figure)


def _fmt(value) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return html.escape(str(value))


def _img(source, alt: str) -> str:
    uri = thumbnail_data_uri(source) if source is not None else ""
    if not uri:
        return '<div class="noimg">no image</div>'
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _metrics_table(rows: list[MetricRow]) -> str:
    body = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td class=num>{_fmt(r.value)}</td><td class=num>{_fmt(r.chance)}</td>"
        f"<td>{html.escape(r.note)}</td></tr>"
        for r in rows
    )
    return (
        "<table class=metrics><thead><tr><th>metric</th><th>value</th><th>chance</th><th></th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _neighbours(neighbours: list[Neighbour]) -> str:
    cells = []
    for rank, n in enumerate(neighbours, 1):
        marks: dict[bool | None, str] = {
            True: ' <span class=ok title="relevant">&#10003;</span>',
            False: ' <span class=no title="not relevant">&#10007;</span>',
        }
        mark = marks.get(n.relevant, "")
        cells.append(
            f"<figure class=hit>{_img(n.image, n.caption)}<figcaption><b>{rank}.</b> "
            f"<span class=score>{n.score:.3f}</span>{mark}<br>{html.escape(n.caption)}</figcaption></figure>"
        )
    return f"<div class=hits>{''.join(cells)}</div>"


def _query_block(q: QueryResult) -> str:
    if q.image is not None:
        refs = "".join(f"<li>{html.escape(c)}</li>" for c in q.references)
        label = f"<p class=muted>label: {html.escape(q.label)}</p>" if q.label else ""
        head = (
            f"<div class=query>{_img(q.image, 'query image')}<div><p><b>generated:</b> "
            f"{html.escape(q.generated or '')}</p><p><b>true captions:</b></p><ul>{refs}</ul>{label}</div></div>"
        )
    else:
        head = f"<div class=query><p><b>text query:</b> &ldquo;{html.escape(q.text or '')}&rdquo;</p></div>"
    return f"<section class=result>{head}{_neighbours(q.neighbours)}</section>"


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:0 auto;padding:1rem;color:#222}
h1{margin-bottom:.2rem} .muted{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border-bottom:1px solid #ddd;padding:.25rem .7rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.result{border-top:1px solid #ccc;padding:.6rem 0}
.query{display:flex;gap:1rem;align-items:flex-start} .query ul{margin:.2rem 0}
.hits{display:flex;gap:.6rem;flex-wrap:wrap;margin-top:.4rem}
.hit{margin:0;width:128px;font-size:.8rem}
.hit img,.query img{width:112px;height:112px;object-fit:cover;border-radius:4px}
.score{color:#276;font-weight:bold} .ok{color:#2a6} .no{color:#b33}
.noimg{width:112px;height:112px;background:#eee;display:flex;align-items:center;justify-content:center}
"""


def render_report(
    title: str,
    summary: dict,
    metrics: list[MetricRow],
    history: dict | None = None,
    image_queries: Sequence[QueryResult] = (),
    text_queries: Sequence[QueryResult] = (),
    notes: Sequence[str] = (),
) -> str:
    """The report as one HTML string (every piece of text is escaped)."""
    facts = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>" for k, v in summary.items())
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        "".join(f"<p class=muted>{html.escape(n)}</p>" for n in notes),
        f'<h2 id="setup">Setup</h2><table>{facts}</table>',
        f'<h2 id="metrics">Metrics</h2>{_metrics_table(list(metrics))}',
    ]
    if history and history.get("loss"):
        png = base64.b64encode(loss_curve_png(history)).decode("ascii")
        parts.append(f'<h2 id="loss-curve">Loss curve</h2><img alt="loss curve" src="data:image/png;base64,{png}">')
    if image_queries:
        parts.append('<h2 id="image-search">Image search: held-out images, their captions and top neighbours</h2>')
        parts.extend(_query_block(q) for q in image_queries)
    if text_queries:
        parts.append('<h2 id="text-search">Text search</h2>')
        parts.extend(_query_block(q) for q in text_queries)
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(
    path: PathLike,
    title: str,
    summary: dict,
    metrics: list[MetricRow],
    history: dict | None = None,
    image_queries: Sequence[QueryResult] = (),
    text_queries: Sequence[QueryResult] = (),
    notes: Sequence[str] = (),
) -> Path:
    """Write :func:`render_report` to ``path`` atomically (parent folders created); returns the path."""
    text = render_report(title, summary, metrics, history, image_queries, text_queries, notes)
    return atomic_write_text(path, text)
