"""Which SOP sections are about the document rather than the procedure."""

from __future__ import annotations

import re

# References, an appendix, a glossary or a maintenance schedule name every concept of an SOP
# (a glossary does by design), so they match every entry and suit none: a callout there is
# never read where the work happens.
_GENERIC = re.compile(
    r"\b(references?|appendi(?:x|ces)|change ?log|revision history|version history|glossary|resources|"
    r"table of contents|contents|maintenance|further reading|see also|sources|bibliography|index|"
    r"document control|templates?|related (?:sops?|procedures|documents))\b",
    re.IGNORECASE,
)
# A section that is only a measurement table ("Metrics & KPIs", "Success Metrics") lists the SOP's concepts
# the way a glossary does; a step named for what it measures ("1b. Funnel Conversion Metrics") is a step.
_MEASURES = re.compile(r"^(?:[\w.]+[.:)]\s+)?(?:(?:key|success|core)\s+)?(?:metrics|kpis?|measures)"
                       r"(?:\s*(?:&|and)\s*(?:kpis?|metrics|targets))?$", re.IGNORECASE)


def is_generic(heading: str | None) -> bool:
    """True for References, Appendix, Changelog, Glossary, Resources, Table of Contents, a bare
    Metrics & KPIs and the like."""
    return bool(heading) and bool(_GENERIC.search(heading) or _MEASURES.match(heading.strip()))
