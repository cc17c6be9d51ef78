"""A writer's compact vectors kept as mapped files (recommender/live/arrayfiles.py): the same
arrays as in memory, shared by writers of one machine, never half-built, never taken from a
folder another user could write, and old versions' folders pruned."""

from __future__ import annotations

import logging
import mmap
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recommender.config import Settings
from recommender.live.arrayfiles import KEEP_FOLDERS, MANIFEST, ArrayFolder, ArrayStore
from recommender.live.articles import _build
from recommender.live.compact import Blob
from recommender.live.vectors import VectorIndex, compact_arrays
from recommender.server import make_service
from tests.corpus import make_articles
from tests.helpers import ServerThread, as_articles, trained_and_served
from tests.live_helpers import TECH_TEXT, upsert
from training.related.params import RelatedParams

pytest_plugins = ["tests.live_fixtures"]


def is_mapped(array: np.ndarray) -> bool:
    """Whether the array's memory is a file mapping (not the process's own)."""
    base: Any = array
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False


@pytest.fixture
def spooled(tmp_path: Path) -> Path:
    """A version's vectors blob as a writer spools it (LSA and embeddings included)."""
    trained_and_served(as_articles(make_articles(per_topic=25)), RelatedParams(lsa_dims=20),
                       tmp_path)  # fmt: skip
    return tmp_path / "spooled.npz"


def test_mapped_arrays_equal_the_in_memory_ones_and_a_second_writer_reuses_them(
    spooled: Path, tmp_path: Path
) -> None:
    memory = ArrayStore()
    with spooled.open("rb") as spool:
        compact_arrays(Blob(spool), memory)
        arrays = _build(spool, ArrayFolder(tmp_path / "w", "ns", "v1", b"meta"))
    assert arrays.keys() == memory.arrays.keys()
    for name, array in memory.arrays.items():
        assert np.array_equal(arrays[name], array), name
        assert is_mapped(arrays[name]), name  # nothing copied into the process
    folder = ArrayFolder(tmp_path / "w", "ns", "v1", b"meta")
    assert [p.name for p in folder.parent.iterdir()] == [folder.final.name]  # no build left
    again = folder.open()
    assert again is not None and again.keys() == arrays.keys()
    mapped_files = Path("/proc/self/maps").read_text()
    assert is_mapped(again["postings.indices"])
    assert str(folder.final / "postings.indices.npy") in mapped_files
    # The same version id with another manifest (another Redis) never reuses the folder.
    assert ArrayFolder(tmp_path / "w", "ns", "v1", b"other meta").open() is None


def test_a_mapped_index_scores_as_the_in_memory_one(spooled: Path, tmp_path: Path) -> None:
    articles = as_articles(make_articles(per_topic=25))
    with spooled.open("rb") as spool:
        arrays = _build(spool, ArrayFolder(tmp_path / "w", "ns", "v1", b"m"))
        spool.seek(0)
        text_model = (tmp_path / "text_model.json").read_bytes()
        in_memory = VectorIndex.load("v1", text_model, spool)
    mapped = VectorIndex.stored("v1", text_model, arrays)
    for article in articles[::20]:
        ours = mapped.score(mapped.vectorize(article), article.id)
        theirs = in_memory.score(in_memory.vectorize(article), article.id)
        assert np.array_equal(ours.positions, theirs.positions)
        assert np.allclose(ours.blended, theirs.blended, atol=1e-6)


def test_a_damaged_folder_is_built_again(
    spooled: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = ArrayFolder(tmp_path / "w", "ns", "v1", b"meta")
    with spooled.open("rb") as spool:
        _build(spool, folder)
    (folder.final / "postings.weights.npy").write_bytes(b"\x93NUMPY")  # truncated by a crash
    with caplog.at_level(logging.WARNING, "newsrec.live"):
        assert folder.open() is None
    assert "building them again" in caplog.text
    with spooled.open("rb") as spool:
        rebuilt = _build(spool, folder)
    assert rebuilt["postings.weights"].dtype == np.float16 and folder.open() is not None


def test_a_folder_others_can_write_is_refused(spooled: Path, tmp_path: Path) -> None:
    (tmp_path / "w" / "ns").mkdir(parents=True)
    os.chmod(tmp_path / "w" / "ns", 0o777)
    folder = ArrayFolder(tmp_path / "w", "ns", "v1", b"meta")
    with spooled.open("rb") as spool, pytest.raises(PermissionError, match="not be writable"):
        _build(spool, folder)


def test_old_versions_folders_are_pruned(spooled: Path, tmp_path: Path) -> None:
    versions = [f"v{n}" for n in range(KEEP_FOLDERS + 2)]
    for n, version in enumerate(versions):
        folder = ArrayFolder(tmp_path / "w", "ns", version, b"meta")
        with spooled.open("rb") as spool:
            _build(spool, folder)
        os.utime(folder.final, (1000.0 + n, 1000.0 + n))  # older versions have older folders
    left = sorted(p.name.split("-")[0] for p in (tmp_path / "w" / "ns").iterdir())
    assert left == versions[-KEEP_FOLDERS:]
    assert all((tmp_path / "w" / "ns" / p / MANIFEST).is_file()
               for p in os.listdir(tmp_path / "w" / "ns"))  # fmt: skip


def test_two_writers_share_one_folder_and_an_unusable_one_falls_back_to_memory(
    live: ServerThread, live_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    second = make_service(live_settings)
    other = ServerThread(live_settings, second)
    try:
        with caplog.at_level(logging.INFO, "newsrec.live"):
            upsert(live, "tech-a", TECH_TEXT, ["tech"])
            upsert(other, "tech-b", TECH_TEXT + " chip", ["tech"])
        assert caplog.text.count("built the compact vectors") == 1
        assert caplog.text.count("mapping the vectors another writer built") == 1
        index = second.articles._index
        assert index is not None and is_mapped(index.postings.indices)
        assert live_settings.writer_dir in Path("/proc/self/maps").read_text()
    finally:
        other.stop()
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    os.chmod(open_dir, 0o777)  # another user could plant arrays here
    (open_dir / live_settings.namespace).mkdir(mode=0o777)
    os.chmod(open_dir / live_settings.namespace, 0o777)
    third = ServerThread(replace(live_settings, writer_dir=str(open_dir)))
    try:
        with caplog.at_level(logging.WARNING, "newsrec.live"):
            result = upsert(third, "tech-c", TECH_TEXT + " battery", ["tech"])
        assert result.related_count > 0
        assert "writer_dir unusable" in caplog.text and "in memory" in caplog.text
    finally:
        third.stop()
