"""Render the labelled corpus's playbook: long SOPs of a real RevOps playbook's shape.

Each SOP has a purpose and roles table, two phases of steps ("1a. ...") written from the
step's own concepts, tables and code blocks, optional category sections (Key Principles,
Common Mistakes, Why This Matters) and the generic sections real playbooks carry
(Metrics, Templates, "4a. Maintenance Schedule", Glossary, References, Appendix,
Revision History) — which name every concept of the SOP, as real ones do.
"""

from __future__ import annotations

import json
import random
import re

from bench.quality.topics import MODULES, SOPS, Sop, Step

ROLES = ("RevOps manager", "sales manager", "account executive", "SDR team lead", "customer success manager",
         "sales engineer", "enablement lead", "VP of Sales", "marketing operations analyst", "deal desk analyst")
TOOLS = ("CRM", "Salesforce", "HubSpot", "the sales engagement platform", "the BI workspace", "Gong", "the shared drive")
CADENCES = ("weekly", "every two weeks", "monthly", "quarterly", "at every stage change")

LEAD = (
    "This step makes the {a} explicit so that every {role} works from the same definition. The {b} and the {c} are "
    "reviewed together, because a change to one of them nearly always changes the other.",
    "Teams that skip the {a} end up debating the {b} in every meeting. Treat the {c} as the control point: it is where "
    "exceptions are caught before they reach a customer or a forecast.",
    "The {a} is owned by the {role}, who keeps it current in {tool}. Everything downstream, including the {b}, reads "
    "from it, so a stale value here quietly corrupts the numbers the leadership team relies on.",
    "Before anyone changes the {b}, the {role} checks the {a} against the current quarter's plan. The {c} exists so "
    "that this check takes minutes rather than an afternoon of spreadsheet archaeology.",
    "Good execution of the {a} is mostly discipline: the same inputs, the same owner, the same cadence. The {b} and "
    "the {c} give that discipline a shape that new hires can follow from their first week.",
)
PROCEDURE = (
    "Open the record in {tool} and confirm the {a} is populated before the {cadence} sync.",
    "The {role} reviews the {b} against the last {n} closed opportunities and flags anything outside tolerance.",
    "Document the {c} in the shared workspace with the date and the owner's initials.",
    "If the {a} conflicts with the {b}, escalate to the {role} within one business day.",
    "Update the {c} whenever the territory plan or the pricing sheet changes.",
    "Tag the record with the reason code so that the {b} can be reported on later.",
    "Send a short summary to the account team once the {a} is agreed.",
    "Compare this period's {c} with the previous period's and note any drift above {n} percent.",
    "Archive superseded versions of the {b}; never overwrite them in place.",
    "Confirm the {role} has acknowledged the change before closing the task in {tool}.",
    "Attach supporting evidence (call notes, emails, screenshots) to the {a} record.",
    "Schedule the next review of the {c} on the team calendar before leaving the meeting.",
)
CHECKS = (
    "A reviewer should be able to trace every {a} back to a dated decision. If the trail stops at a spreadsheet "
    "someone keeps on their laptop, the step has not been completed. Spot-check {n} records each {cadence} and log "
    "the result, including records that passed.",
    "Quality here is measured by consistency rather than volume. Two {role}s looking at the same {b} should reach the "
    "same conclusion; when they do not, the definition of the {c} needs another pass, not the people.",
    "Audit the {b} {cadence}. Records missing the {c} are returned to their owner with a note explaining what is "
    "missing; repeated misses are raised in the owner's next one-on-one rather than in a public channel.",
)
EXAMPLE = (
    "Worked example: a {segment} account with {n} open opportunities arrives at this step. The {role} reviews the "
    "{a}, finds that the {b} was last touched {n2} days ago, and asks the owner to confirm it before the {cadence} "
    "review. The owner updates the {c}, adds a note in {tool}, and the record moves on without a meeting.",
    "Worked example: during a {cadence} review the {role} notices that the {c} for a {segment} deal disagrees with "
    "the {a}. Rather than editing it directly, they message the owner, who explains that the {b} changed after a "
    "call on Tuesday. Both fields are corrected and the reason is logged, so the next reviewer sees the history.",
)
EXCEPTIONS = (
    "Exceptions: strategic accounts and deals above the approval threshold follow the same {a} process but with the "
    "{role} as a second reviewer. Any deviation from the standard {b} must be written down with its reason.",
    "Exceptions are rare and always documented. When the {c} cannot be completed, for example because the customer "
    "has not yet replied, the record is marked as pending with a follow-up date no more than {n} days out.",
)
SEGMENTS = ("mid-market", "enterprise", "SMB", "public sector", "strategic")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def sop_path(sop: Sop) -> str:
    folder = MODULES[sop.module][0]
    return f"docs/sops/{folder}/sop-{sop.module}-{sop.number}-{slug(sop.title)}.md"


def step_headings(sop: Sop) -> list[str]:
    """The H3 headings of the SOP's steps, e.g. "1a. Lifecycle Stage Criteria"."""
    labels = ("1a", "1b", "2a", "2b")
    return [f"{label}. {step.heading}" for label, step in zip(labels, sop.steps, strict=True)]


def _fill(template: str, rng: random.Random, step: Step) -> str:
    a, b, c = (t.sop for t in step.terms)
    return template.format(a=a, b=b, c=c, role=rng.choice(ROLES), tool=rng.choice(TOOLS), cadence=rng.choice(CADENCES),
                           n=rng.randint(3, 20), n2=rng.randint(10, 60), segment=rng.choice(SEGMENTS))


def _step_section(rng: random.Random, heading: str, step: Step) -> str:
    a, b, c = (t.sop for t in step.terms)
    lead = " ".join(_fill(t, rng, step) for t in rng.sample(LEAD, 3))
    procedure = "\n".join(f"{k}. {_fill(t, rng, step)}" for k, t in enumerate(rng.sample(PROCEDURE, 9), 1))
    table = "\n".join([
        "| Checkpoint | Owner | Frequency | Evidence |", "|---|---|---|---|",
        *(f"| {x.capitalize()} reviewed | {rng.choice(ROLES).capitalize()} | {rng.choice(CADENCES).capitalize()} | "
          f"Note in {rng.choice(TOOLS)} |" for x in (a, b, c)),
    ])
    code = (f"```yaml\n# {heading}: tracked fields\n{slug(a).replace('-', '_')}:\n  owner: {slug(rng.choice(ROLES))}\n"
            f"  required: true\n  review: {slug(rng.choice(CADENCES))}\n{slug(b).replace('-', '_')}:\n"
            f"  source: {slug(rng.choice(TOOLS)) or 'crm'}\n  history: keep\n```")
    parts = [f"### {heading}\n", lead + "\n", "**Procedure**\n", procedure + "\n", table + "\n",
             "**Quality checks**\n", " ".join(_fill(t, rng, step) for t in rng.sample(CHECKS, 3)) + "\n",
             _fill(rng.choice(EXAMPLE), rng, step) + "\n", code + "\n", _fill(rng.choice(EXCEPTIONS), rng, step) + "\n"]
    return "\n".join(parts)


def _category_sections(rng: random.Random, sop: Sop) -> list[str]:
    terms = [t.sop for s in sop.steps for t in s.terms]
    out = []
    if "principles" in sop.extras:
        items = [f"- Treat the {x} as a shared asset, not one person's spreadsheet." for x in rng.sample(terms, 3)]
        items += [f"- Every change to the {x} has an owner and a date." for x in rng.sample(terms, 2)]
        out.append("## Key Principles\n\n" + "\n".join(items) + "\n")
    if "mistakes" in sop.extras:
        items = [f"- Letting the {x} drift between reviews until nobody trusts it." for x in rng.sample(terms, 2)]
        items += [f"- Changing the {x} without telling the people who report on it." for x in rng.sample(terms, 2)]
        items += [f"- Skipping the {x} when the quarter gets busy." for x in rng.sample(terms, 1)]
        out.append("## Common Mistakes\n\n" + "\n".join(items) + "\n")
    if "why" in sop.extras:
        x, y = rng.sample(terms, 2)
        out.append(f"## Why This Matters\n\nThe {sop.subject} process decides where the team spends its week. When the "
                   f"{x} is reliable, managers coach instead of chasing data, and the {y} becomes something the whole "
                   f"company can plan around rather than argue about.\n")
    return out


def _generic_sections(rng: random.Random, sop: Sop) -> list[str]:
    terms = [t.sop for s in sop.steps for t in s.terms]
    metrics = "\n".join(["| Metric | Target | Owner | Source |", "|---|---|---|---|"] + [
        f"| {x.capitalize()} completeness | {rng.randint(85, 99)}% | {rng.choice(ROLES).capitalize()} | {rng.choice(TOOLS)} |"
        for x in rng.sample(terms, 5)])
    template = (f"```text\nSubject: {sop.title} update for {{account}}\n\nHi {{first_name}},\n\nQuick update on the "
                f"{terms[0]} and the {terms[4]} for {{account}}. The next review is on {{date}}.\n\nThanks,\n{{owner}}\n```")
    maintenance = "\n".join(["| Task | Frequency | Owner |", "|---|---|---|"] + [
        f"| Review {x} definitions | {rng.choice(CADENCES).capitalize()} | {rng.choice(ROLES).capitalize()} |"
        for x in rng.sample(terms, 4)] + ["| Archive superseded versions of this SOP | Quarterly | RevOps manager |"])
    glossary = "\n".join(f"- **{x.capitalize()}**: the {x} as this playbook defines it; see the step where it is "
                         f"introduced for the owner and the review cadence." for x in terms)
    refs = "\n".join(f"- {MODULES[s.module][1].split(': ')[1]}: SOP {s.module}.{s.number} {s.title}"
                     for s in rng.sample([s for s in SOPS if s is not sop], 4))
    appendix = (f"This appendix collects the field definitions used by the {sop.subject} process. The {terms[1]}, the "
                f"{terms[5]} and the {terms[9]} are stored as first-class fields in {rng.choice(TOOLS)}; the rest are "
                f"derived in the BI workspace. Historical values are kept for {rng.randint(12, 36)} months.\n\n"
                f"```sql\nSELECT owner_id, COUNT(*) AS records, AVG(days_in_stage) AS avg_days\nFROM opportunities\n"
                f"WHERE updated_at > now() - interval '90 days'\nGROUP BY owner_id\nORDER BY records DESC;\n```\n")
    return [
        f"## Metrics & KPIs\n\n{metrics}\n",
        f"## Templates\n\nUse this message when the {sop.subject} status changes for a customer-facing team.\n\n{template}\n",
        f"## 4a. Maintenance Schedule\n\nThis SOP is reviewed on the cadence below. The owner records the review date "
        f"in the revision history even when nothing changed.\n\n{maintenance}\n",
        f"## Glossary\n\n{glossary}\n",
        f"## References\n\n{refs}\n- Internal wiki: revenue operations handbook\n",
        f"## Appendix A: Field Definitions\n\n{appendix}",
        f"## Revision History\n\n| Version | Date | Change |\n|---|---|---|\n| 1.0 | 2025-03-0{rng.randint(1, 9)} | "
        f"First published |\n| 1.{rng.randint(1, 4)} | 2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} | Clarified the "
        f"{rng.choice(terms)} |\n",
    ]


def render_sop(sop: Sop) -> str:
    rng = random.Random(f"sop-{sop.module}-{sop.number}")
    title = f"SOP {sop.module}.{sop.number}: {sop.title}"
    headings = step_headings(sop)
    roles = "\n".join(["| Role | Responsibility |", "|---|---|"] + [
        f"| {r.capitalize()} | Owns the {t.sop} and signs off changes |" for r, t in
        zip(rng.sample(ROLES, 4), [s.terms[0] for s in sop.steps], strict=True)])
    body = [
        f"---\nid: sop-{sop.module}-{sop.number}-{slug(sop.title)}\ntitle: {json.dumps(title)}\n"
        f"sidebar_position: {sop.number}\n---\n",
        f"# {title}\n",
        f"## Purpose\n\nThis SOP describes how the team runs {sop.subject}: who owns each step, what is recorded, and how "
        f"the process is reviewed. It covers {', '.join(s.heading.lower() for s in sop.steps)}.\n",
        f"## Scope & Roles\n\n{roles}\n",
        "## Phase 1: Foundations\n",
        _step_section(rng, headings[0], sop.steps[0]), _step_section(rng, headings[1], sop.steps[1]),
        "## Phase 2: Operating Rhythm\n",
        _step_section(rng, headings[2], sop.steps[2]), _step_section(rng, headings[3], sop.steps[3]),
        *_category_sections(rng, sop),
        *_generic_sections(rng, sop),
    ]
    return "\n".join(body)


def playbook_files() -> dict[str, bytes]:
    """The whole repository: SOPs, module category files, intro, Docusaurus config."""
    files = {sop_path(s): render_sop(s).encode() for s in SOPS}
    for number, (folder, label) in MODULES.items():
        files[f"docs/sops/{folder}/_category_.json"] = json.dumps(
            {"label": label, "position": number + 1}, indent=2).encode() + b"\n"
    files["docs/intro.md"] = b"---\nid: intro\ntitle: Revenue Operations Playbook\nsidebar_position: 1\n---\n\n" \
                             b"# Revenue Operations Playbook\n\nStandard operating procedures for the revenue team.\n"
    files["sidebars.js"] = b"const sidebars = {playbookSidebar: [{type: 'autogenerated', dirName: '.'}]};\n" \
                           b"module.exports = sidebars;\n"
    files["docusaurus.config.js"] = b"module.exports = {title: 'RevOps Playbook', url: 'https://example.com', baseUrl: '/'};\n"
    return files
