"""Knowledge already written, said again in other words (issue 11 #7).

A callout we wrote last week is one or two sentences; an entry restating it a week later
shares its subject (the step's concepts) but hardly its phrasing ("Same lesson again this
week: X first, Y second"), so word containment against the whole SOP never calls it
redundant. What does: on the SOP's own vocabulary weighted by rarity (the entry's words the
SOP uses at all, each by the inverse share of its paragraphs that use it: the call's chatter,
names and dates fall away, common words weigh little), the entry is nearer to one of the SOP's
callouts than to any paragraph of the SOP's own text. A new tip about a step is nearest to that step's
section; a restated one is nearest to the tip that already says it. The comparison is
relative to the SOP's own text, so it needs no threshold of its own.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence

_OPENER = re.compile(r"^:::[A-Za-z]+\b")
_HEADING = re.compile(r"^#{1,6}\s")
_ATTRIBUTION = " -- "  # blocks written before the attribution had a line of its own carry it after this
_CREDIT = "— "  # callouts.ATTRIBUTION_PREFIX: the block's attribution line

Features = Callable[[str], Mapping[str, float]]
CARRIED = 0.5  # share of a removed callout's own words (those the SOP lacks) a restatement of it carries


def split(sop_text: str) -> tuple[list[str], list[str]]:
    """(callout bodies, section texts without their callouts) of an SOP's Markdown."""
    callouts: list[str] = []
    sections: list[list[str]] = [[]]
    block: list[str] | None = None
    for line in sop_text.splitlines():
        if block is not None:
            if line.strip() == ":::":
                # As the page shows it: mdx_safe writes "<Too expensive>" as "&lt;Too expensive&gt;", and the
                # entry it is compared with says "<Too expensive>" (no "lt"/"gt"/"123" words of our making).
                body = html.unescape(" ".join(block))
                callouts.append(body.rsplit(_ATTRIBUTION, 1)[0] if _ATTRIBUTION in body else body)
                block = None
            elif not line.startswith(_CREDIT):  # who said it, not what was said
                block.append(line.strip())
        elif _OPENER.match(line):
            block = []
        elif _HEADING.match(line):
            sections.append([line.lstrip("#").strip()])
        else:
            sections[-1].append(line)
    return callouts, [t for t in ("\n".join(s).strip() for s in sections) if t]


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    dot = sum(w * b.get(k, 0.0) for k, w in a.items())
    norm = math.sqrt(sum(w * w for w in a.values())) * math.sqrt(sum(w * w for w in b.values()))
    return dot / norm if norm else 0.0


def restated_callout(entry_text: str, sop_text: str, features: Features) -> tuple[str, float, float] | None:
    """(the callout it restates, its similarity, the nearest paragraph's) when the entry, on the SOP's own
    vocabulary weighted by rarity, is nearer to one of the SOP's callouts than to any paragraph of its own
    text; else None."""
    callouts, sections = split(sop_text)
    # Paragraphs, not whole sections: a callout is a paragraph, and a long section's cosine with anything
    # is diluted by its length, so a short callout would look nearer than the SOP's text for no reason.
    paragraphs = [p for s in sections for p in re.split(r"\n\s*\n", s) if p.strip()]
    if not callouts or not paragraphs:
        return None
    own = [features(p) for p in paragraphs]
    # The SOP's own words, weighted by how few of its paragraphs use them (inverse document frequency):
    # words the calls share with every tip ("deal", "review", "standard") weigh little, the step's
    # concepts much; words the SOP never uses (names, the call's chatter) not at all.
    df: dict[str, int] = {}
    for f in own:
        for k in f:
            df[k] = df.get(k, 0) + 1
    idf = {k: math.log(1 + len(own) / n) for k, n in df.items()}

    def weighted(f: Mapping[str, float]) -> dict[str, float]:
        return {k: w * idf[k] for k, w in f.items() if k in idf}

    entry = weighted(features(entry_text))
    if not entry:
        return None
    scored = [(_cosine(entry, weighted(features(c))), c) for c in callouts]
    near, best_callout = max(scored, key=lambda sc: sc[0])
    paragraph = max(_cosine(entry, weighted(f)) for f in own)
    # A figure the callout does not carry ("3% to 5%" beside its "2% to 6%") is new evidence, not the
    # same knowledge again: the SOP-vocabulary weighting above cannot see it, so it is checked here.
    if near > paragraph and not _figures(entry_text) - _figures(best_callout):
        return best_callout, near, paragraph
    return None


def _figures(text: str) -> set[str]:
    """The numbers a text states (12, 2.5, 40%), normalised: '2.0' and '2' are one figure."""
    return {f.rstrip("0").rstrip(".") if "." in f else f for f in re.findall(r"\d+(?:[.,]\d+)?", text.replace(",", "."))}


def restated_removal(entry_text: str, sop_text: str, removed: Sequence[str], features: Features) -> str | None:
    """The body of the removed callout block (one a person deleted from this SOP) that the entry says again,
    by restated_callout's measure with the removed blocks counted among the SOP's callouts; else None.

    The classifier sees the SOP as it is, so knowledge an editor took out looks new to it, and
    the next restatement of it would be written straight back (F11).
    """
    bodies = {body for block in removed for body in split(block)[0]}
    if not bodies:
        return None
    found = restated_callout(entry_text, "\n\n".join([sop_text, *removed]), features)
    if found is None or found[0] not in bodies:
        return None
    # The measure above sees only the SOP's words, so "subject lines naming a competitor" and "subject lines
    # naming a mutual connection" look alike. Holding back new knowledge is worse than missing a repeat: the
    # entry must also carry most of what the removed callout added to the SOP (its features the SOP lacks).
    own = {k for p in split(sop_text)[1] for k in features(p)}
    added = set(features(found[0])) - own
    carried = len(added & set(features(entry_text))) / len(added) if added else 1.0
    return found[0] if carried >= CARRIED else None
