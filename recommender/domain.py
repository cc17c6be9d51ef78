"""Domain types shared by training and serving: what an article is, what a valid id is."""

from __future__ import annotations

import re
from dataclasses import dataclass

ID_MAX_LENGTH = 128
_ID_RE = re.compile(r"[A-Za-z0-9._:~-]{1,128}")


def is_valid_id(value: str) -> bool:
    """True for 1-128 characters of [A-Za-z0-9._:~-]: the only ids allowed to touch a Redis key."""
    return _ID_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Article:
    """One news article as the site's export describes it."""

    id: str
    title: str
    body: str = ""
    sections: tuple[str, ...] = ()
    """The first is the article's main section."""
    tags: tuple[str, ...] = ()
    url: str = ""
    published_at: float | None = None
    """Epoch seconds (UTC), None when the export has no date."""


CLICK = "click"
IMPRESSION = "impression"
EVENT_TYPES = (CLICK, IMPRESSION)
