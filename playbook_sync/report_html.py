"""Render a run report (report.build's dict) as one self-contained HTML page: inline CSS and SVG, no assets."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from playbook_sync import learning_report
from playbook_sync.evidence import stats_line  # in the callout's units, as `sops stats` prints them

STATUS_COLORS = {"success": "#1a7f37", "partial": "#b35900", "failed": "#cf222e", "running": "#0969da"}
NO_REASON = '<span class="empty">no reason recorded</span>'
OUTCOME_COLORS = {"enriched": "#1a7f37", "redundant": "#6e7781", "orphaned": "#8250df", "deferred": "#b35900", "failed": "#cf222e"}

CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#f6f8fa;--card:#fff;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif}
main{max-width:1080px;margin:0 auto;padding:28px 24px 48px}
header{display:flex;align-items:center;gap:14px;flex-wrap:wrap;margin-bottom:6px}
h1{font-size:22px;margin:0;font-weight:600}
h2{font-size:16px;margin:0 0 12px;font-weight:600}
.sub{color:var(--muted);font-size:13px;margin-bottom:18px}
.pill{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:600;color:#fff;text-transform:uppercase;letter-spacing:.03em}
.banner{background:#fff8c5;border:1px solid #d4a72c;border-radius:8px;padding:10px 14px;margin:14px 0;font-weight:500}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin:16px 0}
.meta{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:10px 24px}
.meta div{min-width:0}.meta dt{color:var(--muted);font-size:12px}.meta dd{margin:0;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px;overflow-wrap:anywhere}
.stats{display:grid;grid-template-columns:repeat(6,1fr);gap:12px}
.stat{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;border-top:4px solid var(--c)}
.stat .n{font-size:26px;font-weight:600;line-height:1.2}.stat .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.bar{display:flex;height:10px;border-radius:5px;overflow:hidden;margin-top:14px;background:#eaeef2}
.bar span{display:block;height:100%}
.legend{display:flex;gap:16px;flex-wrap:wrap;color:var(--muted);font-size:12px;margin-top:8px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
svg text{font:11px -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;fill:#57606a}
.sop{border:1px solid var(--line);border-radius:8px;margin:12px 0;overflow:hidden}
.sop>summary{cursor:pointer;padding:10px 14px;background:#f6f8fa;display:flex;gap:10px;align-items:center;list-style:none}
.sop>summary::-webkit-details-marker{display:none}
.sop>summary .path{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px;font-weight:600;flex:1 1 auto;overflow-wrap:anywhere}
.tag.sections{max-width:300px;overflow:hidden;text-overflow:ellipsis}
.tag{font-size:11px;border-radius:999px;padding:1px 8px;border:1px solid var(--line);background:#fff;color:var(--muted);white-space:nowrap}
.tag.new{background:#dafbe1;border-color:#4ac26b;color:#116329}.tag.add{color:#116329}
.diff{margin:0;font:12px/1.55 ui-monospace,SFMono-Regular,Menlo,monospace;overflow-x:auto;background:#fff}
.diff div{padding:0 14px;white-space:pre-wrap;overflow-wrap:anywhere;min-height:1.55em}
.diff .add{background:#e6ffec}.diff .del{background:#ffebe9}.diff .hunk{background:#ddf4ff;color:#0550ae}.diff .file{color:var(--muted)}
table{width:100%;border-collapse:collapse;font-size:13px}
th{text-align:left;color:var(--muted);font-weight:500;font-size:12px;border-bottom:1px solid var(--line);padding:6px 8px}
td{border-bottom:1px solid #eaeef2;padding:8px;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.progress{width:120px;height:8px;background:#eaeef2;border-radius:4px;overflow:hidden;display:inline-block;vertical-align:middle;margin-right:8px}
.progress span{display:block;height:100%;background:#8250df}
.muted{color:var(--muted)}.small{font-size:12px}.nowrap{white-space:nowrap}
.empty{color:var(--muted);font-style:italic}
ul.errors{margin:0;padding-left:18px;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:28px}
@media (max-width:720px){.stats{grid-template-columns:repeat(3,1fr)}}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _when(iso: str | None) -> str:
    if not iso:
        return "—"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def _duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "—"
    seconds = int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def histogram_svg(h: dict, width: int = 1000, height: int = 230) -> str:
    """Bars of best-match similarity per bin, tinted by band, with the band edges drawn and labelled."""
    counts: list[int] = list(h.get("counts") or [])
    step = float(h.get("step") or 0.05)
    weak, strong = float(h.get("weak", 0.6)), float(h.get("strong", 0.75))
    left, right, top, bottom = 40, 12, 26, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    tick = next(t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**9) if max(counts or [0]) / t <= 5)
    peak = max(tick, -(-max(counts or [0]) // tick) * tick)  # the y axis ends on a whole tick
    x = lambda v: left + v * plot_w
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="histogram of best-match similarities">',
             f'<rect x="{x(0):.1f}" y="{top}" width="{x(weak) - x(0):.1f}" height="{plot_h}" fill="#f6f8fa"/>',
             f'<rect x="{x(weak):.1f}" y="{top}" width="{x(strong) - x(weak):.1f}" height="{plot_h}" fill="#fff8c5" opacity=".7"/>',
             f'<rect x="{x(strong):.1f}" y="{top}" width="{x(1) - x(strong):.1f}" height="{plot_h}" fill="#dafbe1" opacity=".7"/>']
    for value in range(tick, peak + 1, tick):  # horizontal grid on whole counts
        y = top + plot_h * (1 - value / peak)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de" stroke-dasharray="2 3"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    for i, n in enumerate(counts):
        lo = i * step
        mid = lo + step / 2
        color = "#2da44e" if mid >= strong else "#d4a72c" if mid >= weak else "#8c959f"
        bar_h = plot_h * n / peak
        bx, bw = x(lo) + 1.5, plot_w * step - 3
        parts.append(f'<rect x="{bx:.1f}" y="{top + plot_h - bar_h:.1f}" width="{bw:.1f}" height="{bar_h:.1f}" rx="2" fill="{color}">'
                     f'<title>{lo:.2f}–{lo + step:.2f}: {n}</title></rect>')
        if n:
            parts.append(f'<text x="{bx + bw / 2:.1f}" y="{top + plot_h - bar_h - 4:.1f}" text-anchor="middle" style="fill:#1f2328">{n}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#8c959f"/>')
    for mark in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{x(mark):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{mark:.2f}</text>')
    for value, name, color in ((weak, "weak", "#9a6700"), (strong, "strong", "#1a7f37")):
        parts.append(f'<line class="band-edge" data-band="{name}" x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{top - 6}" y2="{top + plot_h}" stroke="{color}" stroke-width="2" stroke-dasharray="5 3"/>')
        parts.append(f'<text x="{x(value) + 4:.1f}" y="{top - 10}" style="fill:{color};font-weight:600">{name} ≥ {value:.2f}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">best-match cosine similarity per entry</text>')
    parts.append("</svg>")
    return "".join(parts)


def _diff_html(diff: str) -> str:
    rows = []
    for line in diff.splitlines():
        cls = ("file" if line.startswith(("+++", "---")) else "add" if line.startswith("+")
               else "del" if line.startswith("-") else "hunk" if line.startswith("@@") else "ctx")
        rows.append(f'<div class="{cls}">{_e(line) or " "}</div>')
    return f'<pre class="diff">{"".join(rows)}</pre>'


def _sops(sops: list[dict]) -> str:
    if not sops:
        return '<p class="empty">No SOP was changed or created.</p>'
    out = []
    for i, sop in enumerate(sops):
        tags = ['<span class="tag new">new SOP</span>'] if sop["new"] else []
        if sop["callouts"]:
            n = len(sop["callouts"])
            tags.append(f'<span class="tag">{n} callout{"s" if n != 1 else ""}</span>')
            sections = ", ".join(sorted({c["section"] or "(top)" for c in sop["callouts"]}))
            tags.append(f'<span class="tag sections" title="{_e(sections)}">{_e(sections)}</span>')
        tags.append(f'<span class="tag add">+{sop["added"]} lines</span>')
        label = f' <span class="muted small">“{_e(sop["label"])}”</span>' if sop.get("label") else ""
        body = _diff_html(sop["diff"]) if sop["diff"] else f'<p class="empty" style="padding:0 14px">{_e(sop.get("diff_error") or "no diff (nothing committed)")}</p>'
        opened = " open" if not sop["new"] and i < 6 else ""
        out.append(f'<details class="sop"{opened}><summary><span class="path">{_e(sop["path"])}</span>{label}{"".join(tags)}</summary>{body}</details>')
    return "".join(out)


def _clusters(c: dict) -> str:
    shown = c.get("shown") or []
    if not shown:
        return '<p class="empty">No orphan clusters.</p>'
    rows = []
    for v in shown:
        status = ('<span class="tag new">promoted</span>' if v["status"] == "promoted" else
                  '<span class="tag">ready next run</span>' if v["progress"] >= 1 else "")
        what = _e(v["label"] or (v["samples"][0] if v["samples"] else v["id"][:8]))
        rest = v["samples"] if v["label"] else v["samples"][1:]  # unlabelled: the first sample is the title
        samples = "".join(f'<div class="muted small">· {_e(s)}</div>' for s in rest)
        rows.append(
            f'<tr><td>{what} {status}{samples}</td>'
            f'<td class="nowrap"><span class="progress"><span style="width:{v["progress"] * 100:.0f}%;background:{"#2da44e" if v["progress"] >= 1 else "#8250df"}"></span></span>{v["progress"] * 100:.0f}%</td>'
            f'<td class="num">{v["entries"]} / {v["min_entries"]}</td><td class="num">{v["sources"]} / {v["min_sources"]}</td>'
            f'<td class="num">{v["new_this_run"]}</td></tr>')
    more = c["open_total"] - sum(1 for v in shown if v["status"] == "open")
    tail = f'<p class="muted small">{more} more open cluster{"s" if more != 1 else ""} not shown.</p>' if more > 0 else ""
    return ('<table><tr><th>cluster</th><th>to promotion</th><th class="num">entries</th><th class="num">sources</th>'
            f'<th class="num">new this run</th></tr>{"".join(rows)}</table>{tail}')


def _cost(cost: dict) -> str:
    head = (f'<p><b style="font-size:20px">${cost["total_usd"]:.4f}</b> <span class="muted">· '
            f'{cost["input_tokens"]:,} input tokens · {cost["output_tokens"]:,} output tokens</span></p>')
    if not cost["lines"]:
        return head + '<p class="empty">No paid provider calls were logged for this run (offline providers cost nothing).</p>'
    rows = "".join(
        f'<tr><td>{_e(x["step"])}</td><td>{_e(x["provider"])} · <span class="muted">{_e(x["model"])}</span></td>'
        f'<td class="num">{x["calls"]}</td><td class="num">{x["input_tokens"]:,}</td><td class="num">{x["output_tokens"]:,}</td>'
        f'<td class="num">{x["cache_tokens"]:,}</td><td class="num">${x["cost_usd"]:.4f}</td></tr>' for x in cost["lines"])
    return head + ('<table><tr><th>step</th><th>model</th><th class="num">calls</th><th class="num">input</th>'
                   f'<th class="num">output</th><th class="num">cache</th><th class="num">cost</th></tr>{rows}</table>')


def _problems(problems: list[dict]) -> str:
    if not problems:
        return '<p class="empty">None: every entry reached a final state.</p>'
    rows = "".join(
        f'<tr><td><span class="pill" style="background:{OUTCOME_COLORS[p["status"]]}">{_e(p["status"])}</span></td>'
        f'<td>{_e(p["excerpt"])}<div class="muted small">{_e(p["category"])} · {_e(p["entry_id"])}</div></td>'
        f'<td>{_e(p["reason"]) or NO_REASON}</td></tr>' for p in problems)
    return f'<table><tr><th>outcome</th><th>entry</th><th>reason</th></tr>{rows}</table>'


def _evidence(items: list[dict]) -> str:
    """Outcome evidence from execution reports: the aggregate callouts this run planned (issue 13)."""
    if not items:
        return '<p class="empty">No new outcome evidence.</p>'
    rows = "".join(
        f'<tr><td>{_e(i["sop"])}</td><td>{_e(i["evidence"].get("executions"))}</td>'
        f'<td>{_e("; ".join(stats_line(m) for m in i["evidence"].get("metrics", [])))}</td>'
        f'<td>{"committed" if i["committed"] else "not committed"}</td></tr>' for i in items)
    return f'<table><tr><th>SOP</th><th>executions</th><th>median delta per metric</th><th></th></tr>{rows}</table>'


def render(report: dict) -> str:
    """The whole page."""
    run, counts = report["run"], report["counts"]
    status_color = STATUS_COLORS.get(run["status"], "#57606a")
    title = f'{"Dry run" if run["dry_run"] else "Run"} {run["id"][:8]} — {run["status"]}'
    commit = run["commit_sha"]
    meta = [
        ("window", f'{_when(run["window_start"]) if run["window_start"] else "the beginning"} → {_when(run["window_end"])}'),
        ("started", _when(run["run_at"])), ("duration", _duration(run["run_at"], run["finished_at"])),
        ("trigger", run["trigger"]), ("embedding model", run["embedding_model"] or "—"),
        ("commit", ("(dry run: nothing committed)" if run["dry_run"] else commit[:12]) if commit else "none"),
    ]
    meta_html = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in meta)
    if run.get("pull_request_url"):
        meta_html += f'<div><dt>pull request</dt><dd><a href="{_e(run["pull_request_url"])}">{_e(run["pull_request_url"])}</a></dd></div>'
    stats = "".join(
        f'<div class="stat" style="--c:{OUTCOME_COLORS.get(k, "#0969da")}"><div class="n">{counts.get(k, 0)}</div><div class="l">{k}</div></div>'
        for k in ("entries", "enriched", "redundant", "orphaned", "deferred", "failed"))
    total = counts.get("entries") or 0
    bar = "".join(f'<span style="width:{100 * counts.get(k, 0) / total:.2f}%;background:{c}" title="{k}: {counts.get(k, 0)}"></span>'
                  for k, c in OUTCOME_COLORS.items()) if total else ""
    legend = "".join(f'<span><i style="background:{c}"></i>{k}</span>' for k, c in OUTCOME_COLORS.items())
    h = report["histogram"]
    errors = "".join(f"<li>{_e(line)}</li>" for line in run["errors"])
    banner = ('<div class="banner">Dry run — every step ran against the live playbook and data, but nothing was committed, '
              'no window moved and no run was recorded. The diffs below are what a real run would write.</div>') if run["dry_run"] else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>playbook-sync · {_e(title)}</title><style>{CSS}</style></head>
<body><main>
<header><h1>playbook-sync · {_e("Dry run" if run["dry_run"] else "Run")} <span style="font-family:ui-monospace,Menlo,monospace">{_e(run["id"][:8])}</span></h1>
<span class="pill" style="background:{status_color}">{_e(run["status"])}</span></header>
<div class="sub">run {_e(run["id"])}</div>{banner}
<section class="card"><dl class="meta">{meta_html}</dl></section>
<section id="counts"><div class="stats">{stats}</div><div class="bar">{bar}</div><div class="legend">{legend}</div></section>
<section class="card" id="histogram"><h2>Best-match similarity <span class="muted small">({h.get("n", 0)} entries; bands for {_e(run["embedding_model"])})</span></h2>
{histogram_svg(h)}
{"".join(f'<p class="muted small">{_e(line)}</p>' for line in h.get("calibration", []))}
<div class="legend"><span><i style="background:#8c959f"></i>no match → orphan</span><span><i style="background:#d4a72c"></i>weak candidate</span><span><i style="background:#2da44e"></i>strong candidate</span></div></section>
<section class="card" id="changes"><h2>SOP changes</h2>{_sops(report["sops"])}</section>
<section class="card" id="evidence"><h2>Results from the field</h2>{_evidence(report.get("evidence", []))}</section>
<section class="card" id="clusters"><h2>Orphan clusters <span class="muted small">({report["clusters"]["open_total"]} open; promotion needs both bars full)</span></h2>{_clusters(report["clusters"])}</section>
<section class="card" id="cost"><h2>Tokens and cost</h2>{_cost(report["cost"])}</section>
{learning_report.html(report.get("learning"))}
<section class="card" id="problems"><h2>Failed and deferred entries</h2>{_problems(report["problems"])}</section>
{f'<section class="card" id="errors"><h2>Run log</h2><ul class="errors">{errors}</ul></section>' if errors else ""}
<footer>generated {_e(_when(report["generated_at"]))} by playbook-sync</footer>
</main></body></html>
"""
