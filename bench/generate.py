"""Deterministic playbook and knowledge entries for the bench: M SOPs and N entries with topic structure.

An SOP's topic is (theme, facet, segment): its module is the theme, its title and body
draw on the theme's vocabulary, the facet's and the segment's. Entries are about one SOP
(same vocabulary, new specifics: numbers, tools, outcomes), restate an SOP line, belong
to topics no SOP covers (they pile up as orphans and cluster into new SOPs), or are noise.
Lengths follow a real playbook: SOPs of 3-6 KB in ~10 sections, entries of 1-3 sentences.
Same seed, same bytes.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from playbook_sync.schemas import EntryIn

# theme: (module title, object phrase, vocabulary)
_THEMES = [
    ("Ideal Client Profile", "ideal client profile",
     "firmographics headcount revenue vertical buyer persona pain trigger budget authority champion disqualify fit tier account list territory"),
    ("Offer Design", "core offer",
     "outcome guarantee deliverable scope retainer pilot bundle promise transformation milestone timeline value proof roadmap"),
    ("Pricing and Packaging", "pricing tiers",
     "price anchor discount package tier margin invoice deposit annual monthly upsell value premium floor"),
    ("Cold Email", "cold email sequences",
     "subject line opener personalization deliverability inbox bounce domain warmup reply rate sequence snippet spam"),
    ("LinkedIn Outreach", "LinkedIn outreach",
     "connection request profile headline comment post voice note inmail network engagement creator feed carousel"),
    ("Follow-Up", "follow-up cadence",
     "touchpoint cadence reminder nudge ghosted breakup voicemail calendar recap resend check-in timing"),
    ("Discovery Calls", "discovery calls",
     "agenda question pain impact budget decision process stakeholder timeline notes recap urgency qualification"),
    ("Objection Handling", "objections",
     "objection price concern competitor stall reframe acknowledge evidence risk hesitation pushback rebuttal trust"),
    ("Proposals", "proposals",
     "proposal scope walkthrough signature contract terms options summary approval redline document deadline"),
    ("Negotiation", "negotiations",
     "concession trade leverage procurement legal walkaway counteroffer term payment clause renewal anchor"),
    ("Onboarding", "client onboarding",
     "kickoff handoff access welcome questionnaire milestone expectation portal intake schedule owner"),
    ("Account Management", "account reviews",
     "health score renewal expansion churn review sponsor usage roadmap escalation satisfaction quarterly"),
    ("Referrals", "referral programs",
     "referral introduction partner testimonial advocate reward warm intro network ask incentive case"),
    ("Content Marketing", "lead magnets",
     "magnet webinar newsletter guide download funnel landing page optin audience topic headline"),
    ("Sales Hiring", "SDR hiring",
     "candidate interview scorecard ramp quota compensation role play onboarding manager coaching shadow"),
    ("Pipeline Reviews", "pipeline reviews",
     "forecast stage probability deal slippage coverage hygiene crm next step commit velocity"),
]
THEMES: list[tuple[str, str, list[str]]] = [(title, obj, words.split()) for title, obj, words in _THEMES]
# facet: (title template, vocabulary)
FACETS: list[tuple[str, list[str]]] = [
    ("Run the Weekly {obj} Review", "weekly review meeting scorecard metrics owner".split()),
    ("Write {obj} Templates", "template draft copy wording swipe example".split()),
    ("Hand Off {obj} to Delivery", "handoff delivery team brief notes transition".split()),
    ("Measure {obj} Results", "measure dashboard benchmark conversion baseline report".split()),
    ("Qualify Leads From {obj}", "qualify lead score criteria filter priority".split()),
    ("Train New Reps on {obj}", "training rep shadowing practice certification playbook".split()),
    ("Fix Stalled {obj}", "stalled stuck diagnose restart blocker recovery".split()),
    ("Scale {obj} Without Losing Quality", "scale volume quality automation batch capacity".split()),
    ("Set Up Tooling for {obj}", "tooling software integration setup workflow automation".split()),
    ("Test and Iterate on {obj}", "test experiment variant hypothesis iterate learning".split()),
]
SEGMENTS: list[tuple[str, list[str]]] = [
    ("Agencies", "agency retainer creative clients".split()),
    ("SaaS Founders", "saas founder product trial".split()),
    ("Consultants", "consultant advisory expertise engagement".split()),
    ("Enterprise Accounts", "enterprise procurement security committee".split()),
    ("E-commerce Brands", "ecommerce brand store shoppers".split()),
    ("Local Service Businesses", "local service owner neighborhood".split()),
    ("Recruiting Firms", "recruiting placement hiring talent".split()),
    ("Fintech Startups", "fintech compliance payments startup".split()),
]
# Topics no SOP covers: their entries become orphans and cluster into new SOPs.
ORPHAN_TOPICS: list[tuple[str, list[str]]] = [
    ("podcast guesting", "podcast host episode guest interview listeners booking pitch recording".split()),
    ("trade show booths", "trade show booth badge scan booth traffic giveaway demo station floor".split()),
    ("community groups", "community slack group members moderator channel thread event".split()),
    ("customer advisory boards", "advisory board members seats feedback session charter roadmap input".split()),
    ("case study production", "case study interview quote approval draft results metrics story".split()),
    ("sales compensation plans", "commission accelerator quota plan payout clawback spiff draw".split()),
    ("churn exit interviews", "churn exit interview cancellation reason winback survey cohort".split()),
    ("partner co-marketing", "partner comarketing joint webinar list swap sponsor coseller launch".split()),
]
VERBS = ("ask book check confirm cut document follow keep lead limit map measure open plan prepare present record "
         "review schedule send share show start test track write").split()
TOOLS = "HubSpot Salesforce Apollo Clay Lemlist Gong Notion Slack Calendly Loom PandaDoc Zapier".split()
CLIENTS = "northwind acme globex initech umbrella hooli vandelay stark wayne wonka pied-piper soylent".split()
SPEAKERS = "Dana Whitfield|Marcus Lee|Priya Nair|Tom Becker|Ana Souza|Execution report|Leo Martin|Kim Park".split("|")
CATEGORY_MIX = [("insight", 0.45), ("question", 0.25), ("product_intel", 0.15), ("outcome", 0.15)]
OUTCOME_MIX = [("enrich", 0.70), ("restate", 0.10), ("orphan", 0.15), ("noise", 0.05)]


@dataclass(frozen=True)
class Topic:
    """One SOP's topic and where it lives."""

    theme: int
    facet: int
    segment: int
    module: int
    number: int

    @property
    def words(self) -> list[str]:
        """The vocabulary its text and its entries draw on."""
        return THEMES[self.theme][2] + FACETS[self.facet][1] + SEGMENTS[self.segment][1]

    @property
    def title(self) -> str:
        """The SOP's title, without the "SOP m.n:" prefix."""
        _, obj, _ = THEMES[self.theme]
        return f"{FACETS[self.facet][0].format(obj=obj.title())} for {SEGMENTS[self.segment][0]}"

    @property
    def slug(self) -> str:
        """The title as a file-name slug."""
        return "-".join("".join(c for c in w.lower() if c.isalnum()) for w in self.title.split())[:60].strip("-")

    @property
    def path(self) -> str:
        """Where the SOP lives in the playbook repository."""
        return f"docs/sops/module-{self.module}/sop-{self.module}-{self.number}-{self.slug}.md"


def topics(m: int, seed: int = 1) -> list[Topic]:
    """m distinct SOP topics: 8 modules for the spec's 42 SOPs, up to 16 for large playbooks."""
    rng = random.Random(seed)
    n_modules = 8 if m <= 64 else len(THEMES)
    combos = [(t, f, s) for t in range(n_modules) for f in range(len(FACETS)) for s in range(len(SEGMENTS))]
    if m > len(combos):
        raise ValueError(f"at most {len(combos)} distinct SOP topics")
    # Round-robin over themes so every module gets its share, then facets/segments at random.
    by_theme = {t: rng.sample([c for c in combos if c[0] == t], k=len(combos) // n_modules) for t in range(n_modules)}
    picked = [by_theme[i % n_modules][i // n_modules] for i in range(m)]
    counters: dict[int, int] = {}
    out = []
    for t, f, s in sorted(picked):
        counters[t] = counters.get(t, 0) + 1
        out.append(Topic(t, f, s, module=t + 1, number=counters[t]))
    return out


# -- text ----------------------------------------------------------------------------


def _phrase(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.sample(words, k=min(n, len(words))))


def _sentence(rng: random.Random, words: list[str]) -> str:
    """One instruction-like sentence built from a topic's vocabulary."""
    a, b, c = _phrase(rng, words, 2), _phrase(rng, words, 2), _phrase(rng, words, 1)
    verb, days = rng.choice(VERBS), rng.randint(2, 14)
    forms = [
        f"{verb.capitalize()} the {a} before you move on to the {b}.",
        f"Keep the {a} short and tie it to the {b} the buyer already named.",
        f"Most teams skip the {a}, which is why the {b} slips by {days} days on average.",
        f"Use the {a} to decide whether the {b} is worth a second {c}.",
        f"If the {a} is unclear, {verb} the {b} again and write down what changed.",
        f"The {a} works best when one owner checks the {b} every {days} days.",
        f"Share the {a} with the team and agree on the {b} before the next {c}.",
    ]
    return rng.choice(forms)


def _paragraph(rng: random.Random, words: list[str], lo: int, hi: int) -> str:
    return " ".join(_sentence(rng, words) for _ in range(rng.randint(lo, hi)))


def sop_text(topic: Topic, seed: int) -> str:
    """One SOP in the playbook's shape: frontmatter, intro, Why This Matters, Steps, principles, mistakes."""
    rng = random.Random(f"{seed}:{topic.path}")
    words = topic.words
    title = f"SOP {topic.module}.{topic.number}: {topic.title}"
    steps = []
    for k in range(1, rng.randint(4, 7) + 1):
        heading = f"{rng.choice(VERBS).capitalize()} the {_phrase(rng, words, 2)}"
        steps.append(f"### Step {k}: {heading}\n\n{_paragraph(rng, words, 2, 4)}\n")
    bullets = lambda n: "\n".join(f"- {_sentence(rng, words)}" for _ in range(n))  # noqa: E731
    return (
        f"---\nid: sop-{topic.module}-{topic.number}-{topic.slug}\ntitle: \"{title}\"\n"
        f"sidebar_position: {topic.number}\n---\n\n# {title}\n\n{_paragraph(rng, words, 2, 3)}\n\n"
        f"## Why This Matters\n\n{_paragraph(rng, words, 2, 4)}\n\n## Steps\n\n" + "\n".join(steps)
        + f"\n## Key Principles\n\n{bullets(rng.randint(3, 5))}\n\n## Common Mistakes\n\n{bullets(rng.randint(3, 5))}\n"
    )


def playbook(m: int, seed: int = 1, text=None) -> dict[str, bytes]:
    """A Docusaurus playbook repository with m SOPs: path → bytes (text(topic, seed): an SOP's Markdown)."""
    text = text or sop_text
    files: dict[str, bytes] = {
        "docusaurus.config.js": b"module.exports = { title: 'Playbook', presets: [['classic', {docs: {sidebarPath: './sidebars.js'}}]] };\n",
        "sidebars.js": b"module.exports = { playbook: [{type: 'autogenerated', dirName: '.'}] };\n",
        "docs/intro.md": b"---\nid: intro\ntitle: Introduction\n---\n\n# Introduction\n\nThe playbook's SOPs, by module.\n",
    }
    all_topics = topics(m, seed)
    for module in sorted({t.module for t in all_topics}):
        label = THEMES[module - 1][0]
        files[f"docs/sops/module-{module}/_category_.json"] = json.dumps({"label": f"Module {module}: {label}", "position": module}).encode()
    for t in all_topics:
        files[t.path] = text(t, seed).encode("utf-8")
    return files


def touch(files: dict[str, bytes], fraction: float, seed: int = 1) -> dict[str, bytes]:
    """A human's week of edits: a sentence added to the intro of `fraction` of the SOPs."""
    rng = random.Random(f"touch:{seed}")
    sops = sorted(p for p in files if p.startswith("docs/sops/") and p.endswith(".md"))
    changed = {}
    for path in rng.sample(sops, k=max(1, round(len(sops) * fraction))):
        text = files[path].decode("utf-8")
        head, sep, rest = text.partition("\n## Why This Matters")
        changed[path] = (head.rstrip("\n") + "\n\nReviewed this week: the owner confirmed every step still applies.\n"
                         + sep + rest).encode("utf-8")
    return changed


def _weighted(rng: random.Random, mix: list[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in mix], weights=[w for _, w in mix])[0]


def entries(n: int, m: int, now: datetime, seed: int = 1) -> list[EntryIn]:
    """n knowledge entries from the past week, about the m SOPs of playbook(m, seed) and beyond."""
    rng = random.Random(f"entries:{seed}:{n}:{m}")
    all_topics = topics(m, seed)
    sources = [f"call-{(now - timedelta(days=i % 7)).date()}-{CLIENTS[i % len(CLIENTS)]}-{i}" for i in range(max(3, n // 4))]
    out = []
    for _ in range(n):
        category = _weighted(rng, CATEGORY_MIX)
        kind = _weighted(rng, OUTCOME_MIX)
        topic = rng.choice(all_topics)
        if kind == "orphan":
            label, words = ORPHAN_TOPICS[rng.randrange(len(ORPHAN_TOPICS))]
            content, tags = _entry_body(rng, words, category), [label.replace(" ", "-")]
        elif kind == "restate":
            lines = [ln for ln in sop_text(topic, seed).splitlines() if ln.startswith("- ")]
            content, tags = f"We confirmed on the call: {rng.choice(lines)[2:]}", [THEMES[topic.theme][1].replace(" ", "-")]
        elif kind == "noise":
            content, tags = _entry_body(rng, rng.sample(VERBS + TOOLS, k=12), category), []
        else:
            content, tags = _entry_body(rng, topic.words, category), [THEMES[topic.theme][1].replace(" ", "-")]
        transcript = "report" if category == "outcome" else rng.choice(["coaching", "sales"])
        out.append(EntryIn(
            id=uuid.UUID(int=rng.getrandbits(128), version=4), category=category, content=content,
            context=f"{transcript.capitalize()} call with {rng.choice(CLIENTS).title()}, {rng.choice(TOOLS)} notes reviewed.",
            speaker=rng.choice(SPEAKERS), transcript_type=transcript, tags=tags, source_ref=rng.choice(sources),
            created_at=now - timedelta(seconds=rng.randint(60, 7 * 86400 - 60)),
        ))
    return out


def _entry_body(rng: random.Random, words: list[str], category: str) -> str:
    """1-3 sentences in the voice of the category, with new specifics (numbers, tools)."""
    a, b = _phrase(rng, words, 2), _phrase(rng, words, 2)
    pct, before, tool = rng.randint(5, 60), rng.randint(2, 9), rng.choice(TOOLS)
    lead = {
        "insight": f"We found that {a} beats {b} when the team runs it in {tool}.",
        "question": f"How should we handle the {a} when the {b} is still open?",
        "product_intel": f"{tool} now supports the {a} natively, so the {b} no longer needs a workaround.",
        "outcome": f"Changing the {a} lifted the {b} rate from {before}% to {before + pct // 3}% over {rng.randint(2, 8)} weeks.",
    }[category]
    extra = [f"The {_phrase(rng, words, 2)} mattered more than the {_phrase(rng, words, 1)}.",
             f"Two clients asked about the {_phrase(rng, words, 2)} in the same week.",
             f"It took about {pct} minutes per {_phrase(rng, words, 1)} to set up."]
    return " ".join([lead, *rng.sample(extra, k=rng.randint(0, 2))])
