"""The learning loop in words: the report's HTML section, and lines for `runs show` and `sops`."""

from __future__ import annotations

from html import escape


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _days(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} d"


def lines(learning: dict | None) -> list[str]:
    """A run's learning metrics and trend as plain lines."""
    if not learning:
        return []
    c = learning.get("callouts", {})
    out = [f"callouts decided {learning['decided']}: acceptance {_pct(learning['acceptance_rate'])}, "
           f"edited {_pct(learning['edit_rate'])}, declined {_pct(learning['decline_rate'])}, "
           f"moved {_pct(learning['moved_rate'])}; freshness lag {_days(learning['freshness_lag_days'])}",
           "callout states: " + ", ".join(f"{k} {v}" for k, v in c.items() if v)]
    if learning.get("reinforced_this_run"):
        out.append(f"redundant entries that reinforced a callout: {learning['reinforced_this_run']}")
    if learning.get("held"):
        out.append(f"held for review (low confidence): {len(learning['held'])}")
    trend = learning.get("trend") or []
    if len(trend) > 1:
        out.append("trend (acceptance): " + " → ".join(_pct(t["acceptance_rate"]) for t in trend))
    return out


def _table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="muted">none yet</p>'
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def html(learning: dict | None) -> str:
    """The report card: metrics, trend, confidence per (SOP, category), strongest callouts, held entries, lessons."""
    if not learning:
        return ""
    summary = "".join(f"<li>{escape(line)}</li>" for line in lines(learning))
    trend = _table(["run", "decided", "acceptance", "edited", "declined", "freshness lag"],
                   [[t["run_id"][:8], t["decided"], _pct(t["acceptance_rate"]), _pct(t["edit_rate"]),
                     _pct(t["decline_rate"]), _days(t["freshness_lag_days"])] for t in learning.get("trend", [])])
    conf = _table(["SOP", "category", "confidence", "kept", "declined"],
                  [[x["sop"], x["category"], f"{x['confidence']:.3f}", x["kept"], x["declined"]]
                   for x in learning.get("confidence", {}).get("category", [])])
    sections = _table(["SOP", "section", "confidence", "kept", "declined"],
                      [[x["sop"], x["section"], f"{x['confidence']:.3f}", x["kept"], x["declined"]]
                       for x in learning.get("confidence", {}).get("section", [])])
    strongest = _table(["SOP", "helpful", "sources", "callout"],
                       [[sop, x["helpful"], x["sources"], x["text"]] for sop, xs in learning.get("strongest", {}).items()
                        for x in xs])
    held = _table(["entry", "SOP", "why", "says"], [[h["entry_id"][:8], h["sop"] or "", h["reason"], h.get("excerpt", "")]
                                                   for h in learning.get("held", [])])
    taught = _table(["SOP", "lesson"], [[sop, x] for sop, xs in learning.get("lessons", {}).items() for x in xs])
    return (f'<section class="card" id="learning"><h2>What editors kept</h2><ul>{summary}</ul>'
            f"<h3>Trend</h3>{trend}<h3>Confidence per SOP and category</h3>{conf}"
            f"<h3>Confidence per SOP and section</h3>{sections}<h3>Strongest callouts</h3>{strongest}"
            f"<h3>Held for review</h3>{held}<h3>Lessons</h3>{taught}</section>")
