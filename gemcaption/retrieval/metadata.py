"""What the index knows about each image, kept in memory and saved as one SQLite file.

Tables: ``items`` (id, image path, content hash, generated caption, reference captions as a JSON
list, label, and the file's size in bytes and modification time in nanoseconds when it was indexed,
which let :mod:`gemcaption.retrieval.sync` skip unchanged files without reading them) and
``settings`` (key -> JSON value): ``next_id`` and, in indexes of format version 1 only, the
retriever settings (version 2 keeps those in the index's ``manifest.json``).

The database is built in memory and written as one file (no journal beside it); reading loads the
file's bytes into an in-memory database. So no SQLite connection ever opens a saved file for
writing, two processes never share one, and a read-only copy of an index can be read.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError
from ..persistence import atomic_write_bytes

SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    image TEXT,
    content_hash TEXT NOT NULL UNIQUE,
    caption TEXT NOT NULL,
    reference_captions TEXT NOT NULL,
    label TEXT,
    size INTEGER,
    mtime_ns INTEGER
);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Record:
    """One indexed image. ``image`` is its path (None for in-memory images); ``size`` (bytes) and
    ``mtime_ns`` are the file's when it was indexed (None for in-memory images and old indexes)."""

    id: int
    image: str | None
    content_hash: str
    caption: str
    references: tuple[str, ...] = field(default_factory=tuple)
    label: str | None = None
    size: int | None = None
    mtime_ns: int | None = None


def file_stamp(source) -> tuple[int | None, int | None]:
    """``(size, mtime_ns)`` of the file ``source`` names; ``(None, None)`` for an in-memory image or
    a file that cannot be stat'ed. Taken before a file is hashed, so a later change always shows."""
    if not isinstance(source, (str, os.PathLike)):
        return None, None
    try:
        info = os.stat(source)
    except (OSError, ValueError):
        return None, None
    return info.st_size, info.st_mtime_ns


class MetadataStore:
    """Records by id and by content hash, plus the next free id (ids are never reused)."""

    def __init__(self):
        self.records: dict[int, Record] = {}
        self.by_hash: dict[str, int] = {}
        self.next_id = 0

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: Record) -> None:
        self.records[record.id] = record
        self.by_hash[record.content_hash] = record.id
        self.next_id = max(self.next_id, record.id + 1)

    def replace(self, record: Record) -> None:
        """Put ``record`` in place of the record with its id and content hash (a new path or stamp)."""
        old = self.records.get(record.id)
        if old is None or old.content_hash != record.content_hash:
            raise KeyError(f"no record {record.id} with content hash {record.content_hash[:12]}")
        self.records[record.id] = record

    def remove(self, item_id: int) -> Record | None:
        record = self.records.pop(int(item_id), None)
        if record is not None:
            self.by_hash.pop(record.content_hash, None)
        return record

    def write(self, path: Path, settings: dict | None = None) -> None:
        """Write every record, ``next_id`` and ``settings`` into a new SQLite file at ``path``."""
        connection = sqlite3.connect(":memory:")
        try:
            connection.executescript(SCHEMA)
            connection.executemany(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        r.id,
                        r.image,
                        r.content_hash,
                        r.caption,
                        json.dumps(list(r.references), ensure_ascii=False),
                        r.label,
                        r.size,
                        r.mtime_ns,
                    )
                    for r in self.records.values()
                ),
            )
            settings = {**(settings or {}), "next_id": self.next_id}
            connection.executemany(
                "INSERT INTO settings VALUES (?, ?)",
                ((k, json.dumps(v, ensure_ascii=False)) for k, v in settings.items()),
            )
            connection.commit()
            atomic_write_bytes(path, connection.serialize())
        finally:
            connection.close()

    @classmethod
    def read(cls, path: Path) -> tuple[MetadataStore, dict]:
        """The store and the settings saved by :meth:`write`."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise ModelError(f"{path}: index metadata not found") from None
        except OSError as exc:
            raise ModelError(f"{path}: unreadable index metadata ({exc})") from None
        connection = sqlite3.connect(":memory:")
        try:
            connection.deserialize(data)
            store = cls()
            columns = {row[1] for row in connection.execute("PRAGMA table_info(items)")}
            stamp = "size, mtime_ns" if {"size", "mtime_ns"} <= columns else "NULL, NULL"  # older files: none
            for row in connection.execute(
                f"SELECT id, image, content_hash, caption, reference_captions, label, {stamp} FROM items ORDER BY id"
            ):
                store.add(Record(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])), *row[5:8]))
            settings = {k: json.loads(v) for k, v in connection.execute("SELECT key, value FROM settings")}
        except sqlite3.DatabaseError as exc:
            raise ModelError(f"{path}: unreadable index metadata ({exc})") from exc
        finally:
            connection.close()
        store.next_id = max(store.next_id, int(settings.pop("next_id", 0)))
        return store, settings
