"""A playbook as Markdown (export), as HTML printed to PDF by headless Chromium, and as an SOP (publish)."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from playbook_sync.builder.models import Playbook, Scenario
from playbook_sync.mdx import mdx_safe, mdx_text
from playbook_sync.new_sop import slugify

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
PDF_TIMEOUT = 90  # seconds; a cold Chromium start on a loaded machine takes several
LABELS = {"opening_strategy": "Opening strategy", "key_messages": "Key messages",
          "value_propositions": "Value propositions", "discovery_questions": "Discovery questions",
          "objection_handling": "Objection handling", "next_steps": "Next steps"}


class RendererMissing(RuntimeError):
    """No Chromium to print the PDF with."""


def filename(view: Playbook) -> str:
    return slugify(view.title)


def _meta(view: Playbook) -> list[tuple[str, str]]:
    return [(k, v) for k, v in (("Target persona", view.target_persona), ("Industry", view.industry),
                                ("Product line", view.product_line)) if v]


def _lists(scenario: Scenario) -> list[tuple[str, list[str]]]:
    m = scenario.content_modules
    return [(LABELS[k], getattr(m, k)) for k in ("key_messages", "value_propositions", "discovery_questions", "next_steps")]


def markdown(view: Playbook) -> str:
    """The whole playbook as plain Markdown (for people and other tools; not MDX-sanitized)."""
    out = [f"# {view.title}", ""]
    if view.description:
        out += [view.description, ""]
    out += [f"- **{k}:** {v}" for k, v in _meta(view)] + ([""] if _meta(view) else [])
    for s in view.scenarios:
        out += [f"## {s.title}", "", f"*Deal stage: {s.deal_stage.value}*", ""]
        if s.meeting_context:
            out += [s.meeting_context, ""]
        for label, items in (("Customer pain points", s.customer_pain_points), ("Competitors", s.competitors)):
            if items:
                out += [f"**{label}:** " + "; ".join(items), ""]
        if s.content_modules.opening_strategy:
            out += [f"### {LABELS['opening_strategy']}", "", s.content_modules.opening_strategy, ""]
        for label, items in _lists(s):
            if items:
                out += [f"### {label}", "", *(f"- {i}" for i in items), ""]
        if s.content_modules.objection_handling:
            out += [f"### {LABELS['objection_handling']}", ""]
            for pair in s.content_modules.objection_handling:
                out += [f"- **Objection:** {pair.objection}", f"  **Response:** {pair.response}"]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def html_page(view: Playbook) -> str:
    """A printable HTML page of the playbook (what the PDF is printed from); every text escaped."""
    e = html.escape
    parts = [f"<h1>{e(view.title)}</h1>", f"<p>{e(view.description)}</p>" if view.description else ""]
    parts += [f"<p><b>{e(k)}:</b> {e(v)}</p>" for k, v in _meta(view)]
    for s in view.scenarios:
        parts += [f"<h2>{e(s.title)}</h2>", f"<p><i>Deal stage: {e(s.deal_stage.value)}</i></p>",
                  f"<p>{e(s.meeting_context)}</p>" if s.meeting_context else ""]
        if s.content_modules.opening_strategy:
            parts += [f"<h3>{LABELS['opening_strategy']}</h3>", f"<p>{e(s.content_modules.opening_strategy)}</p>"]
        for label, items in [("Customer pain points", s.customer_pain_points), *_lists(s)]:
            if items:
                parts += [f"<h3>{e(label)}</h3><ul>", *(f"<li>{e(i)}</li>" for i in items), "</ul>"]
        if s.content_modules.objection_handling:
            parts.append(f"<h3>{LABELS['objection_handling']}</h3><dl>")
            parts += [f"<dt>{e(p.objection)}</dt><dd>{e(p.response)}</dd>" for p in s.content_modules.objection_handling]
            parts.append("</dl>")
    style = ("body{font-family:sans-serif;margin:2cm;line-height:1.4}h2{border-bottom:1px solid #999;margin-top:2em}"
             "dt{font-weight:bold;margin-top:.6em}")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(view.title)}</title>'
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def chromium() -> str | None:
    """The Chromium binary: the first of CHROMIUM_NAMES on PATH."""
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def pdf(view: Playbook) -> bytes:
    """The playbook printed to PDF by headless Chromium (its own print engine, no other renderer)."""
    binary = chromium()
    if binary is None:
        raise RendererMissing("PDF export needs Chromium on PATH: install it (e.g. apt-get install chromium, "
                              "or `make browser`)")
    with tempfile.TemporaryDirectory(prefix="playbook-pdf-") as tmp:
        page, out = Path(tmp, "playbook.html"), Path(tmp, "playbook.pdf")
        page.write_text(html_page(view), encoding="utf-8")
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp}/profile",
               "--no-pdf-header-footer", f"--print-to-pdf={out}", page.as_uri()]
        done = subprocess.run(cmd, capture_output=True, timeout=PDF_TIMEOUT, check=False)
        if not out.exists() or out.stat().st_size == 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise RendererMissing(f"Chromium did not print the PDF (exit {done.returncode}: {tail[0][:200]})")
        return out.read_bytes()


# -- as an SOP -------------------------------------------------------------------------------------

BUILDER_NOTICE = (":::info From the Playbook Builder\n"
                  "This SOP was written in the Playbook Builder and grounded in our SOPs and call knowledge.\n"
                  "The weekly sync keeps enriching it like any other SOP.\n:::\n")


def _safe(items: list[str]) -> list[str]:
    return [s for s in map(mdx_safe, items) if s]


def sop(view: Playbook, *, module_number: str, number: int, path: str, position: int | None) -> str:
    """The SOP template (frontmatter, title, notice, Overview / Steps / Key Lessons): one step per scenario.

    Every piece of text goes through mdx_safe; only our own markup (headings, bold labels, lists) is MDX.
    """
    title = mdx_safe(view.title) or "Untitled Playbook"
    full = f"SOP {module_number}.{number}: {title}"
    slug = Path(path).stem.split("-", 3)[-1]
    sidebar = f"sidebar_position: {int(position)}\n" if position is not None else ""
    # Frontmatter is YAML, not MDX: its title is the text a reader sees, not the character references.
    out = [f"---\nid: sop-{module_number}-{number}-{slug}\ntitle: {json.dumps(mdx_text(full), ensure_ascii=False)}\n{sidebar}---\n",
           f"# {full}\n", BUILDER_NOTICE, "## Overview\n"]
    out.append((mdx_safe(view.description) or f"How we run {title}.") + "\n")
    out += [f"- **{k}:** {mdx_safe(v)}" for k, v in _meta(view) if mdx_safe(v)] + ([""] if _meta(view) else [])
    out.append("## Steps\n")
    lessons: list[str] = []
    for k, s in enumerate(view.scenarios, start=1):
        out += [f"### Step {k}: {mdx_safe(s.title) or 'Scenario'}\n", f"**Deal stage:** {s.deal_stage.value}\n"]
        if context := mdx_safe(s.meeting_context):
            out.append(context + "\n")
        if opening := mdx_safe(s.content_modules.opening_strategy):
            out.append(f"**{LABELS['opening_strategy']}:** {opening}\n")
        for label, items in [("Customer pain points", s.customer_pain_points), ("Competitors", s.competitors), *_lists(s)]:
            if safe := _safe(items):
                out += [f"**{label}:**\n", *(f"- {i}" for i in safe), ""]
        pairs = [(mdx_safe(p.objection), mdx_safe(p.response)) for p in s.content_modules.objection_handling]
        if pairs := [(o, r) for o, r in pairs if o]:
            out += [f"**{LABELS['objection_handling']}:**\n",
                    *(f"- **Objection:** {o} **Response:** {r or 'to be written'}" for o, r in pairs), ""]
        lessons += _safe(s.content_modules.key_messages)
    out.append("## Key Lessons\n")
    lessons = list(dict.fromkeys(lessons))[:8] or ["Use the scenarios above in the order the deal meets them."]
    out += [f"- {lesson}" for lesson in lessons]
    return "\n".join(out).rstrip() + "\n"
