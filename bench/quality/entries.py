"""The labelled knowledge entries of the quality benchmark: two weeks of calls.

Week 1: at least 60 entries of every category and of each transcript type, each labelled
with its home SOP and section; two planted topics the playbook lacks (4 entries from 3
sources each); a few noise entries. Week 2: entries that restate week-1 knowledge in other
words, a planted topic growing by 2 entries from 2 new sources, new labelled entries, and
a few back-dated ones. Everything is derived from a fixed seed: the same corpus every time.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from bench.quality.playbook import sop_path, step_headings
from bench.quality.topics import MODULES, NOISE, PLANTED, SOPS, Sop, Step
from playbook_sync.providers.offline import terms
from playbook_sync.schemas import EntryIn

NAMESPACE = uuid.UUID("6f1c2d0e-8a55-4c1b-9e7a-2b4f0c9d7a11")
COMPANIES = ("Northwind", "Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Analytics", "Acme Freight",
             "Hooli", "Soylent Foods", "Vandelay Imports", "Cyberdyne", "Tyrell Bio", "Pied Piper", "Massive Dynamic")
REPS = ("Priya", "Marcus", "Jenna", "Tomás", "Aisha", "Connor", "Mei", "Darnell", "Sofia", "Lukas")
COACHES = ("Dana Whitfield", "Rob Okafor", "Helen Park")
BUYERS = ("the VP of Operations", "their CFO", "the head of RevOps", "a procurement lead", "the IT director",
          "their COO", "the sales director")
COMPETITORS = ("Clari", "Outreach", "Salesloft", "Gainsight", "HubSpot")

# {x} and {y}: two concepts of the step, mostly in field wording; {company}, {rep}, {buyer}, {rival}, {n}.
TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("insight", "coaching"): (
        "When I coached {rep} on the {company} account, what moved the deal was sorting out {x} before anyone "
        "talked about {y}. Reps who leave that to the end lose a week.",
        "Pattern from this week's ride-alongs: {x} gets treated as paperwork, but the strongest reps use it to "
        "steer {y}. {rep} did exactly that with {company} and the tone of the call changed.",
        "Tip for the team: tie {x} to something the buyer already cares about, then bring up {y}. It "
        "worked twice this week, once with {company}.",
        "{rep} keeps winning because they never let {y} get vague; they pin down {x} in writing the same day.",
        "Coaching note: new reps over-explain {y}. A two-line recap of {x} sent within the hour does more.",
    ),
    ("insight", "sales"): (
        "On the {company} call, {buyer} told us plainly that how we handled {x} is what convinced them; no other "
        "vendor had been that clear about {y}.",
        "{company} went quiet for three weeks and the reason turned out to be {x}: nobody on our side owned {y}.",
        "Lesson from the {company} deal: once we agreed {x} up front, {y} stopped being a debate and the "
        "deal moved in {n} days.",
        "{buyer} at {company} said {y} only made sense to their team after we walked them through {x}.",
        "We lost momentum at {company} because {x} was fuzzy; next time lock down {y} before the second meeting.",
    ),
    ("question", "coaching"): (
        "How should a new rep handle {x} when {y} is still unclear? {rep} asked in our 1:1 and I did not have "
        "a crisp answer.",
        "What is the right move when {x} looks fine but {y} says otherwise? Two reps handled it differently "
        "this week.",
        "{rep} wants to know who decides on {x} when {y} changes halfway through the quarter. Do we have a rule?",
        "Is there a standard for how often we revisit {x}? The team keeps asking because {y} keeps shifting.",
        "Should reps raise {y} themselves, or wait until {x} is settled? Coaching advice differs by manager.",
    ),
    ("question", "sales"): (
        "{buyer} at {company} asked how we deal with {x} when {y} changes mid-quarter. Do we have a standard "
        "answer?",
        "{company} wants to know whether {x} can be adjusted after signature if {y} turns out different. "
        "What do we tell them?",
        "On the {company} call: who on our side owns {x}, and how quickly do they react when {y} slips? "
        "{buyer} asked twice.",
        "{buyer} asked if other customers share details of {x} with us, and how that affects {y}. Is there guidance?",
        "Prospect question from {company}: can {y} be reviewed before we commit to {x}?",
    ),
    ("product_intel", "coaching"): (
        "Heads up from coaching: our product still cannot export {x}, and reps are rebuilding {y} by hand in "
        "spreadsheets. Product says it is on the roadmap for next quarter.",
        "The new release fills in {x} automatically, which removes a step from {y}. {rep} had not noticed yet; "
        "worth a mention in team meeting.",
        "Reps are confused by the new dashboard: the widget for {x} uses a different definition from the one in {y} "
        "report.",
        "{rep} found that the mobile app hides the field for {x}, so {y} is often empty when updated from a phone.",
    ),
    ("product_intel", "sales"): (
        "Competitor intel: {rival} now bundles {x} tracking at no cost, and {company} brought it up when we "
        "discussed {y}.",
        "{company} told us our integration breaks when {x} has more than {n} values, which stalls {y} on their side.",
        "{buyer} at {company} loved that our product tracks {x} next to {y}; they called it the main reason "
        "for the shortlist.",
        "Prospects keep asking whether our API exposes {x}; {company} needs it to automate {y}.",
    ),
}
RESTATE = (
    "Same lesson again this week: {x} first, {y} second. Getting the order wrong is what slowed the {company} deal.",
    "Another call confirmed it: when {x} is settled early, {y} takes care of itself.",
    "Repeating what we learned last week: make someone own {x}, or {y} drifts.",
)
# Per planted topic: four week-1 entries (calls 1, 2, 3, 3) and, for the first topic, two more in week 2.
PLANTED_TEMPLATES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "marketplace": (
        ("insight", "sales", "{buyer} at {company} wants to buy through an AWS Marketplace private offer so the spend "
                             "counts against their committed cloud spend; the listing turned procurement into a "
                             "two-week job instead of two months."),
        ("question", "sales", "{company} asked whether we can transact through the cloud marketplace. Can we offer a "
                              "private offer there, and does the marketplace fee change our pricing?"),
        ("insight", "coaching", "Coaching note after the {company} call: {rep} did not know how to co-sell with the "
                                "AWS account manager. We need a short guide on marketplace deals before the next one."),
        ("product_intel", "sales", "Our AWS Marketplace listing only shows the monthly plan, so {company} could not "
                                   "burn down their cloud commit with an annual private offer."),
        ("insight", "sales", "A second customer ({company}) asked for a private offer on the AWS Marketplace: their "
                             "finance team only approves new vendors that draw down the committed cloud spend."),
        ("question", "coaching", "{rep} asked who on our side registers the opportunity with AWS co-sell when a "
                                 "buyer wants to purchase through the marketplace."),
    ),
    "events": (
        ("insight", "sales", "Badge scans from the {company} booth at SaaStr converted far better when the follow-up "
                             "went out within 48 hours and mentioned what we talked about at the booth."),
        ("question", "coaching", "{rep} asked how we should staff the trade show booth: who covers which hours, and "
                                 "who owns following up on the scanned badges afterwards?"),
        ("insight", "coaching", "At the conference booth, the reps who asked one question about the visitor's event "
                                "goals got real conversations; the ones handing out swag just collected badges."),
        ("product_intel", "sales", "The badge scanner app from the expo does not sync into our system, so booth "
                                   "conversations from the trade show sat in a spreadsheet for a week."),
    ),
}


@dataclass
class Label:
    """What an entry is, and where it belongs."""

    kind: str  # labelled | planted | noise | restatement | growth
    week: int
    home_sop: str | None = None
    home_sections: list[str] = field(default_factory=list)
    topic: str | None = None  # planted topic key
    topic_folder: str | None = None  # module folder a new SOP on the topic belongs in
    restates: str | None = None  # id of the week-1 entry restated
    backdated: bool = False
    # How the entry names its step: "playbook" (at least one of its concepts as the SOP words it), "field, shared
    # word" (field wording only, but some word of the entry is one of the SOP's concept words: its title, subject,
    # step headings and concepts, stemmed), "field, no shared word" (not one: only a model of synonyms relates them).
    wording: str | None = None


@dataclass
class Corpus:
    week1: list[EntryIn]
    week2: list[EntryIn]
    labels: dict[str, Label]

    def labels_json(self) -> dict:
        return {k: asdict(v) for k, v in self.labels.items()}


def _id(key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, key)


def home_sections(sop: Sop, step_index: int, category: str) -> list[str]:
    """The step the entry is about, plus the category's own section when the SOP has one (DESIGN §1 table)."""
    out = [step_headings(sop)[step_index]]
    if category == "question" and "mistakes" in sop.extras:
        out.append("Common Mistakes")
    if category == "product_intel" and "why" in sop.extras:
        out.append("Why This Matters")
    return out


def _words(rng: random.Random, step: Step) -> tuple[str, str]:
    """Two of the step's concepts; each in field wording half of the time, else the playbook's."""
    first, second = rng.sample(step.terms, 2)
    return tuple(t.field if rng.random() < 0.5 else t.sop for t in (first, second))  # type: ignore[return-value]


def wording(sop: Sop, step: Step, x: str, y: str, text: str) -> str:
    """Label.wording for an entry about `step` that named its concepts as x and y (text: content and context)."""
    if {x, y} & {t.sop for t in step.terms}:
        return "playbook"
    own = set(terms(" ".join([sop.title, sop.subject, *(s.heading for s in sop.steps),
                              *(t.sop for s in sop.steps for t in s.terms)])))
    return "field, shared word" if own & set(terms(text)) else "field, no shared word"


def _text(entry: EntryIn) -> str:
    return f"{entry.content}\n{entry.context or ''}"


def _noun(phrase: str) -> str:
    """The phrase as it reads after a verb: "the funnel status", but "how they buy", "asking for a discount"."""
    first = phrase.split()[0].lower()
    bare = first in {"how", "what", "who", "when", "why", "where"} or first.endswith("ing") or first[:1].isdigit()
    return phrase if bare else f"the {phrase}"


def _fill(rng: random.Random, template: str, x: str, y: str) -> str:
    x, y = _noun(x), _noun(y)
    return template.format(x=x, y=y, company=rng.choice(COMPANIES), rep=rng.choice(REPS), buyer=rng.choice(BUYERS),
                           rival=rng.choice(COMPETITORS), n=rng.randint(3, 40))


# Call descriptions as capture systems write them. Not neutral, as real ones are not: "Discovery call" names SOP 3.1's
# subject, "Coaching notes" and "shadowing" use words of the enablement SOPs, and such words can outrank the step.
COACHING_CONTEXTS = ("Coaching session with {rep} ({team} team)", "Notes after shadowing {rep} on Tuesday",
                     "Team huddle, {team} reps", "Feedback session with {rep}", "Coaching notes, {team} team, Thursday",
                     "Debrief with {rep} and their manager")
SALES_CONTEXTS = ("Discovery call with {company}", "Second meeting with {company}", "Negotiation with {company}'s buying group",
                  "Follow-up call with {company}", "{company} evaluation, week two", "Executive briefing at {company}")


def _context(rng: random.Random, transcript: str, subject: str | None = None) -> str:
    # Half the time the capture system noted what the conversation was about, as real ones do.
    about = f", mostly about {subject}" if subject and rng.random() < 0.5 else ""
    pool = COACHING_CONTEXTS if transcript == "coaching" else SALES_CONTEXTS
    return rng.choice(pool).format(rep=rng.choice(REPS), team=rng.choice(("SMB", "mid-market", "enterprise")),
                                   company=rng.choice(COMPANIES)) + about + "."


def _entry(key: str, rng: random.Random, category: str, transcript: str, content: str, when: datetime,
           source: str | None = None, subject: str | None = None) -> EntryIn:
    speaker = rng.choice(COACHES) if transcript == "coaching" else f"{rng.choice(REPS)} (AE)"
    return EntryIn(id=_id(key), category=category, content=content[0].upper() + content[1:], context=_context(rng, transcript, subject),
                   speaker=speaker, transcript_type=transcript, source_ref=source or f"{transcript}-{key}",
                   created_at=when, tags=[])


def build(now: datetime, *, week2_at: datetime | None = None, per_category: int = 60) -> Corpus:
    """The two weeks of entries: week 1 in the 7 days before `now`, week 2 just before `week2_at`
    (default a week later) but for the back-dated ones, captured weeks before week 1.

    Week 1 does not depend on week2_at, so a runner can build week 2 again once it knows when
    its second run starts."""
    rng = random.Random(20261201)
    facets = [(sop, i) for sop in SOPS for i in range(len(sop.steps))]
    rng.shuffle(facets)
    labels: dict[str, Label] = {}
    week1: list[EntryIn] = []
    categories = ("insight", "question", "product_intel")
    remembered: list[tuple[EntryIn, str, str, Sop, int]] = []
    for n in range(per_category * len(categories)):
        category, transcript = categories[n % 3], ("coaching", "sales")[(n // 3) % 2]
        sop, step = facets[n % len(facets)]
        x, y = _words(rng, sop.steps[step])
        content = _fill(rng, rng.choice(TEMPLATES[(category, transcript)]), x, y)
        # Three entries per call, as a capture system extracts several from one transcript.
        entry = _entry(f"w1-{n}", rng, category, transcript, content, now - timedelta(days=6, hours=-(n % 140)),
                       f"{transcript}-call-{n // 3:03d}", sop.subject)
        week1.append(entry)
        labels[str(entry.id)] = Label("labelled", 1, sop_path(sop), home_sections(sop, step, category),
                                      wording=wording(sop, sop.steps[step], x, y, _text(entry)))
        remembered.append((entry, x, y, sop, step))
    for topic in PLANTED:
        folder = MODULES[topic.module][0]
        sources = [f"call-{topic.key}-{k}" for k in (1, 2, 3, 3)]  # 4 entries from 3 calls
        for k, (category, transcript, template) in enumerate(PLANTED_TEMPLATES[topic.key][:4]):
            entry = _entry(f"planted-{topic.key}-{k}", rng, category, transcript, _planted(rng, template),
                           now - timedelta(days=5 - k), sources[k])
            week1.append(entry)
            labels[str(entry.id)] = Label("planted", 1, topic=topic.key, topic_folder=folder)
    for k, text in enumerate(NOISE):
        entry = _entry(f"noise-{k}", rng, ("insight", "question", "product_intel")[k % 3], ("coaching", "sales")[k % 2],
                       text, now - timedelta(days=4, hours=k))
        week1.append(entry)
        labels[str(entry.id)] = Label("noise", 1)
    week2 = _week2(rng, now, week2_at or now + timedelta(days=7), remembered, labels, facets)
    return Corpus(week1, week2, labels)


def _planted(rng: random.Random, template: str) -> str:
    return template.format(company=rng.choice(COMPANIES), rep=rng.choice(REPS), buyer=rng.choice(BUYERS))


def _week2(rng: random.Random, now: datetime, later: datetime, remembered: list, labels: dict[str, Label],
           facets: list) -> list[EntryIn]:
    """Restatements, a growing planted topic, new labelled entries and back-dated ones (dated after week 1's run)."""
    out: list[EntryIn] = []
    for k, (original, x, y, sop, step) in enumerate(rng.sample([r for r in remembered if r[0].category == "insight"], 6)):
        entry = _entry(f"w2-restate-{k}", rng, "insight", original.transcript_type,
                       _fill(rng, RESTATE[k % len(RESTATE)], x, y), later - timedelta(milliseconds=300 + 10 * k),
                       subject=sop.subject)
        out.append(entry)
        labels[str(entry.id)] = Label("restatement", 2, sop_path(sop), home_sections(sop, step, "insight"),
                                      restates=str(original.id), wording=wording(sop, sop.steps[step], x, y, _text(entry)))
    topic = PLANTED[0]
    for k, (category, transcript, template) in enumerate(PLANTED_TEMPLATES[topic.key][4:]):
        entry = _entry(f"w2-growth-{k}", rng, category, transcript, _planted(rng, template),
                       later - timedelta(milliseconds=200 + 10 * k), f"call-{topic.key}-w2-{k}")
        out.append(entry)
        labels[str(entry.id)] = Label("growth", 2, topic=topic.key, topic_folder=MODULES[topic.module][0])
    for k in range(12):
        category, transcript = ("insight", "question", "product_intel")[k % 3], ("sales", "coaching")[(k // 3) % 2]
        sop, step = facets[(k * 7 + 3) % len(facets)]
        x, y = _words(rng, sop.steps[step])
        backdated = k % 3 == 0  # captured weeks ago, ingested only now: still owed to a run
        when = now - timedelta(days=30 + k) if backdated else later - timedelta(milliseconds=100 + 5 * k)
        entry = _entry(f"w2-{k}", rng, category, transcript, _fill(rng, rng.choice(TEMPLATES[(category, transcript)]), x, y), when,
                       subject=sop.subject)
        out.append(entry)
        labels[str(entry.id)] = Label("labelled", 2, sop_path(sop), home_sections(sop, step, category), backdated=backdated,
                                      wording=wording(sop, sop.steps[step], x, y, _text(entry)))
    return out
