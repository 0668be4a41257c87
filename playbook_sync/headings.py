"""Which SOP sections are about the document rather than the procedure."""

from __future__ import annotations

import re

# References, an appendix, a glossary or a maintenance schedule name every concept of an SOP
# (a glossary does by design), so they match every entry and suit none: a callout there is
# never read where the work happens. These phrases make a section generic wherever they stand.
_DOCUMENT = re.compile(
    r"\b(references?|appendi(?:x|ces)|change ?log|revision history|version history|glossary|"
    r"table of contents|further reading|see also|bibliography|document control|maintenance schedule|"
    r"(?:sop|document|playbook) maintenance|related (?:sops?|procedures|documents|resources|links))\b",
    re.IGNORECASE,
)
# These only as the whole heading: "Resources" or "Templates" is a list, "Lead Sources", "Objection
# Handling Resources" or "3. Build the Template" is a step.
_LISTS = frozenset({"resources", "sources", "index", "contents", "templates", "links", "maintenance"})
_LIST_QUALIFIERS = frozenset({"additional", "useful", "helpful", "other", "key", "and", "&"})
# A section that is only a measurement table ("Metrics & KPIs", "Success Metrics", "Key Performance
# Indicators (KPIs)") lists the SOP's concepts as a glossary does; a step named for what it measures
# ("1b. Funnel Conversion Metrics", "Ramp Metrics") has a word of its own and stays a step.
_MEASURES = frozenset({"metrics", "metric", "kpis", "kpi", "indicators", "measures", "measurement", "measurements",
                       "measuring"})
_MEASURE_QUALIFIERS = frozenset({"key", "success", "core", "performance", "targets", "benchmarks", "and", "&", "to",
                                 "track", "tracking", "of", "the"})
# "{#custom-id}" (Docusaurus), a trailing "(Quarterly)" or ":", markdown emphasis and emoji are not words of the heading.
_NOISE = re.compile(r"\{#[^{}]*\}|\([^()]*\)\s*$|[*_`~]")
_NUMBERING = re.compile(r"^(?:(?:step|phase|part|section|stage)\s+)?(?:\d+[a-z]?(?:\.\d+)*[.:)]?|[a-z][.:)])\s+", re.IGNORECASE)


def words(heading: str) -> list[str]:
    """The heading's words, lowercased, without numbering ("4a.", "Step 7:"), ids, emphasis or emoji."""
    text = _NUMBERING.sub("", _NOISE.sub(" ", heading).strip(" :-–—\t"))
    return re.findall(r"[a-z0-9]+|&", text.casefold())


def is_generic(heading: str | None) -> bool:
    """True for References, Appendix, Changelog, Glossary, Resources, Table of Contents, a bare
    Metrics & KPIs and the like."""
    if not heading:
        return False
    if _DOCUMENT.search(heading):
        return True
    found = set(words(heading))
    if found & _LISTS and found <= _LISTS | _LIST_QUALIFIERS:
        return True
    return bool(found & _MEASURES) and found <= _MEASURES | _MEASURE_QUALIFIERS
