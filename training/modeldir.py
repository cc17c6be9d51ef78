"""Model folders on disk: model/<version>/ written whole (a hidden folder, then one rename), with
a manifest that binds it to its namespace and holds a sha256 of every other file; read back,
checked, and pruned by what Redis still publishes.

records.tsv holds every versioned key's value exactly as published (one line a key: kind, the
JSON-quoted article id or section, the value), so `newsrec publish` can republish a folder
without the training stack and every answer equals the one first served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.domain import Article
from recommender.store import codec
from recommender.store.codec import Candidate, PopularList
from training.related.lists import CandidateLists

if TYPE_CHECKING:  # the training stack (numba); `newsrec publish` never loads it
    from training.related.explain import Explanations

MANIFEST = "manifest.json"
RECORDS = "records.tsv"


class ModelDirError(ValueError):
    """A model folder that cannot be published: missing, foreign, or failing its checksums."""


@dataclass
class BuiltModel:
    """Everything a training run produced, ready to write and publish."""

    version: str
    articles: list[Article]
    related: Sequence[list[Candidate]]
    popular: dict[str, PopularList]
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    text_model: bytes = b""
    """The fitted TF-IDF vocabulary and idf as JSON (recommender.textmodel.TextModel)."""
    vectors_path: Path | None = None
    """The .npz of TF-IDF rows, ids, K-th related scores and the LSA part
    (store.vectors.write_vectors): what live upserts score against on any replica. Moved into
    the model folder as vectors.npz, and published to Redis from there in chunks."""
    popular_windows: dict[str, dict[str, PopularList]] = field(default_factory=dict)
    """The named Popular windows' lists: window -> section -> list."""
    explanations: Explanations | None = None
    """Per article, why its list holds what it holds (related.explain)."""


def file_sha256(path: Path) -> str:
    """A file's sha256, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_model_dir(model: BuiltModel, model_dir: Path) -> Path:
    """Write model_dir/<version>/ through a hidden temporary folder and one rename, so a folder
    with a version name is always complete; a failure removes the temporary folder."""
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / model.version
    partial = model_dir / f".partial-{model.version}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        _write_files(model, partial)
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if model.vectors_path is not None:
        model.vectors_path = final / "vectors.npz"
    return final


def _write_files(model: BuiltModel, folder: Path) -> None:
    """Every file of a model folder; the manifest last, with the others' checksums."""
    (folder / "vectorizer.json").write_bytes(model.text_model)
    if model.vectors_path is not None:
        shutil.move(str(model.vectors_path), folder / "vectors.npz")
    # Uncompressed: at a million articles zlib costs tens of seconds for a few hundred MB saved.
    np.savez(folder / "neighbours.npz", **model.arrays)  # type: ignore[arg-type]
    popular = {
        section: {"as_of": p.as_of, "items": p.items} for section, p in model.popular.items()
    }
    (folder / "popular.json").write_text(json.dumps(popular))
    model.meta["records"] = _write_records(model, folder / RECORDS)
    model.meta["files"] = checksums(folder)
    (folder / MANIFEST).write_text(json.dumps(model.meta, indent=2, sort_keys=True))


def _write_records(model: BuiltModel, path: Path) -> int:
    """records.tsv: each article's record and related list, and each Popular list, encoded
    as published; returns the number of lines."""
    related = (
        model.related.encoded()
        if isinstance(model.related, CandidateLists)
        else map(codec.encode_related, model.related)
    )
    lines = 0
    with path.open("wb") as out:
        for article, value in zip(model.articles, related, strict=True):
            name = json.dumps(article.id).encode()
            out.write(b"art\t" + name + b"\t" + codec.encode_article(article) + b"\n")
            out.write(b"rel\t" + name + b"\t" + value + b"\n")
            lines += 2
        for section, popular in model.popular.items():
            value = codec.encode_popular(popular)
            out.write(b"pop\t" + json.dumps(section).encode() + b"\t" + value + b"\n")
            lines += 1
        if model.explanations is not None:
            for article, record in zip(model.articles, model.explanations.encoded(), strict=True):
                out.write(b"why\t" + json.dumps(article.id).encode() + b"\t" + record + b"\n")
                lines += 1
        for window, lists in model.popular_windows.items():
            for section, popular in lists.items():
                name = json.dumps([window, section]).encode()
                out.write(b"popw\t" + name + b"\t" + codec.encode_popular(popular) + b"\n")
                lines += 1
    return lines


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file of the folder but the manifest."""
    return {
        p.name: file_sha256(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST
    }


def read_manifest(folder: Path) -> dict[str, Any]:
    """A folder's manifest, or ModelDirError saying why it cannot be read."""
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise ModelDirError(f"{folder}: no {MANIFEST}; not a model folder") from None
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{folder}/{MANIFEST}: cannot be read: {exc}") from None
    if not isinstance(manifest, dict):
        raise ModelDirError(f"{folder}/{MANIFEST}: not a JSON object")
    return manifest


def verify_model_dir(folder: Path, namespace: str) -> dict[str, Any]:
    """The manifest of a folder bound to `namespace` whose every file passes its checksum."""
    manifest = read_manifest(folder)
    bound = manifest.get("namespace")
    if bound != namespace:
        raise ModelDirError(
            f"{folder} was trained for namespace {bound!r}, not {namespace!r}; "
            f"publish it with --namespace {bound}" if bound else
            f"{folder} records no namespace (written by an older newsrec); retrain instead"
        )  # fmt: skip
    files = manifest.get("files")
    if not isinstance(files, dict) or RECORDS not in files:
        raise ModelDirError(f"{folder}: the manifest has no file checksums (written by an "
                            "older newsrec); retrain instead")  # fmt: skip
    for name, digest in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            raise ModelDirError(f"{path}: missing (the manifest lists it)")
        if file_sha256(path) != digest:
            raise ModelDirError(
                f"{path}: fails its checksum (its sha256 differs from the manifest's); "
                "the folder is damaged, not publishing it"
            )
    return manifest


def version_folders(model_dir: Path, namespace: str) -> list[Path]:
    """Version folders of this namespace (or of none recorded), oldest first."""
    if not model_dir.is_dir():
        return []
    found = []
    for path in sorted(p for p in model_dir.iterdir() if p.is_dir()):
        if path.name.startswith("."):
            continue
        try:
            bound = read_manifest(path).get("namespace", namespace)
        except ModelDirError:
            bound = namespace  # an unreadable folder is pruned like any of ours
        if bound == namespace:
            found.append(path)
    return found


def find_model_dir(model_dir: Path, namespace: str, version: str | None) -> Path:
    """The folder to publish: DIR/<version>, the newest of the namespace, or DIR itself when it
    is a version folder."""
    if version is None and (model_dir / MANIFEST).is_file():
        return model_dir
    if version is not None:
        folder = model_dir / version
        if not (folder / MANIFEST).is_file():
            raise ModelDirError(f"{folder}: no such model folder")
        return folder
    folders = version_folders(model_dir, namespace)
    if not folders:
        raise ModelDirError(f"{model_dir}: no model folder of namespace {namespace!r}")
    return folders[-1]


def remove_version_files(model_dir: Path, version: str) -> list[Path]:
    """Delete a version's folder and its hidden partial and scratch folders (a killed run's)."""
    doomed = [model_dir / version, model_dir / f".partial-{version}"]
    doomed += list(model_dir.glob(f".scratch-{version}-*")) if model_dir.is_dir() else []
    removed = [p for p in doomed if p.exists()]
    for path in removed:
        shutil.rmtree(path)
    return removed


def prune_model_dirs(model_dir: Path, keep: int, published: set[str], namespace: str) -> list[Path]:
    """Delete this namespace's version folders that Redis does not publish (`published`: the
    kept versions and the live one) and that are not among the newest `keep`; a folder of a
    published version is never deleted."""
    folders = version_folders(model_dir, namespace)
    newest = {p.name for p in folders[-keep:]} if keep > 0 else set()
    removed = [p for p in folders if p.name not in published and p.name not in newest]
    for path in removed:
        shutil.rmtree(path)
    return removed
