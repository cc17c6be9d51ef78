"""Headlines of the demo corpus: each story of a thread gets its own, as on a real site."""

from __future__ import annotations

from training.demo.vocabulary import TITLES

DETAILS = ("Live", "Analysis", "Explainer", "Opinion", "Briefing", "Timeline", "Watch", "Factbox")
"""Labels that tell apart stories of a big thread once its plain titles are used up."""


def fresh_title(section: str, ents: tuple[str, str, str], kws: list[str],
                 nouns: tuple[str, ...], pick: list[int], used: set[str]) -> str:  # fmt: skip
    """A title not yet in `used` (its thread's), and added to it: two stories of a thread under
    one headline read as a bug. The picked template, keyword and noun; else the next template,
    then the next keyword (the thread's, then its section's nouns); when all are used up, the
    same under a detail label ("Analysis: ..."); numbered as a last resort."""
    options, details, (place, person, org) = TITLES[section], DETAILS, ents
    plain = len(options) * (len(kws) + len(nouns))
    for k in range(plain * (1 + len(details))):
        label, r = divmod(k, plain)
        v = r // len(options)  # the variant: the thread's keywords first, then section nouns
        kw = kws[(pick[2] + v) % len(kws)] if v < len(kws) else nouns[(pick[1] + v) % len(nouns)]
        title = options[(pick[0] + r) % len(options)].format(
            place=place, person=person, org=org, noun=nouns[(pick[1] + v) % len(nouns)], kw=kw
        )
        title = title[0].upper() + title[1:]
        if k == 0:
            first = title
        if label:  # the labels in a picked order, not "Live: " on every late story
            title = f"{details[(pick[3] // 3 + label) % len(details)]}: {title}"
        if title not in used:
            break
    else:  # numbers given so far are all <= len(used), so this title is new
        title = f"{first}, part {len(used) + 1}"
    used.add(title)
    return title
