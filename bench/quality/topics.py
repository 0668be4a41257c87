"""The labelled corpus's subject matter: modules, SOPs, their steps, and the words for each.

Every step names three concepts as "playbook wording|field wording": the SOP is written
with the first, and entries mostly use the second (how a rep or a buyer says it on a call),
so an entry shares its topic with its home section but rarely its sentences. A matcher that
only rewards copied phrases does badly here, as it would on a real playbook.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    sop: str  # how the playbook says it
    field: str  # how people say it on calls


@dataclass(frozen=True)
class Step:
    heading: str  # without the "1a." prefix
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class Sop:
    module: int
    number: int
    title: str
    subject: str  # one noun phrase for the whole SOP
    steps: tuple[Step, ...]
    extras: tuple[str, ...]  # which optional category sections it has: principles, mistakes, why


MODULES = {
    1: ("module-1-lifecycle", "Module 1: Customer Lifecycle"),
    2: ("module-2-lead-management", "Module 2: Lead Management"),
    3: ("module-3-sales-execution", "Module 3: Sales Execution"),
    4: ("module-4-customer-success", "Module 4: Customer Success"),
    5: ("module-5-revops-analytics", "Module 5: RevOps Analytics"),
    6: ("module-6-enablement", "Module 6: Sales Enablement"),
}


def _step(heading: str, spec: str) -> Step:
    pairs = [p.split("|") for p in spec.split(";")]
    return Step(heading, tuple(Term(s.strip(), f.strip()) for s, f in pairs))


def _sop(module: int, number: int, title: str, subject: str, extras: str, *steps: tuple[str, str]) -> Sop:
    return Sop(module, number, title, subject, tuple(_step(h, s) for h, s in steps), tuple(extras.split()))


SOPS: tuple[Sop, ...] = (
    _sop(1, 1, "Customer Lifecycle Stage Definitions", "lifecycle stages", "principles mistakes",
         ("Lifecycle Stage Criteria", "lifecycle stage|funnel status; marketing qualified lead|marketing-ready contact; stage exit criteria|graduation rules"),
         ("Stage Ownership Handoffs", "handoff SLA|turnaround promise; owner reassignment|who picks the record up; handoff note|context memo"),
         ("Lifecycle Field Governance", "lifecycle field|status property; backward stage move|record sliding back; audit log|change history"),
         ("Alignment Loop & Strategic Meeting Cadence", "revenue council|leadership sync; stage conversion review|funnel walk-through; definition refresh|periodic re-baselining")),
    _sop(1, 2, "Ideal Customer Profile & Segmentation", "ideal customer profile", "why",
         ("Firmographic Fit Criteria", "firmographic criteria|company attributes like headcount and industry; employee band|team size; tier one accounts|top-priority logos"),
         ("Buying Committee Mapping", "economic buyer|budget holder; technical evaluator|hands-on tester; persona map|who's-who chart"),
         ("Segment Routing Rules", "segment assignment|bucket an account lands in; mid-market|middle band of companies; territory carve|region split"),
         ("ICP Validation Loop", "closed-won analysis|look back at deals we won; negative ICP|accounts we should walk away from; fit score decay|stale fit rating")),
    _sop(1, 3, "Customer Onboarding Kickoff", "onboarding", "principles why",
         ("Kickoff Meeting", "kickoff call|first session after signing; success plan|joint goals document; executive sponsor|senior backer on their side"),
         ("Implementation Timeline", "go-live date|launch day; implementation milestones|rollout checkpoints; data migration|moving their old records over"),
         ("First Value Milestone", "time to first value|how fast they see a win; activation checklist|setup to-do list; adoption baseline|starting usage numbers"),
         ("Onboarding Exit & Handover", "onboarding sign-off|handover acceptance; CSM transition|passing the account to the success manager; health baseline|starting health reading")),
    _sop(2, 1, "Lead Scoring & Qualification", "lead scoring", "mistakes",
         ("Behavioral Scoring", "behavioral score|engagement points; score threshold|cutoff number; score decay|points fading over time"),
         ("Qualification Framework", "qualification framework|discovery checklist like BANT; budget confirmation|money set aside; timeline urgency|when they actually need it"),
         ("Disqualification & Recycling", "disqualification reason|why we dropped it; recycle queue|nurture pool; junk lead|garbage form submission"),
         ("Scoring Model Review", "scoring model|points system; false positives|hot leads that go nowhere; conversion lift|better hit rate")),
    _sop(2, 2, "Lead Routing & Speed to Lead", "lead routing", "principles",
         ("Assignment Rules", "round robin|rotating assignment; routing rules|assignment logic; territory match|region fit"),
         ("Speed-to-Lead Standard", "speed to lead|how fast we call back; five-minute response|calling within minutes; after-hours leads|requests that arrive at night"),
         ("Lead-to-Account Matching", "duplicate detection|same person twice; account matching|tying the contact to the company; parent account|holding company"),
         ("Routing Exceptions", "routing exception|edge case in assignment; named account|strategic logo; reassignment window|how long before it moves to someone else")),
    _sop(2, 3, "Inbound Demo Request Handling", "demo requests", "why mistakes",
         ("Demo Request Intake", "demo request form|book-a-demo page; form fields|questions on the form; enrichment|auto-filled company data"),
         ("Scheduling & Show Rate", "scheduling link|calendar booking tool; no-show rate|people who don't turn up; reminder sequence|nudge emails before the meeting"),
         ("Pre-Call Preparation", "pre-call research|homework before the meeting; qualification notes|what we learned up front; demo agenda|plan for the session"),
         ("Self-Serve Routing", "self-serve path|sending small accounts to the free trial; trial conversion|free users upgrading; product qualified lead|user who hit a usage milestone")),
    _sop(2, 4, "Outbound Prospecting Cadences", "outbound prospecting", "principles mistakes",
         ("Cadence Design", "cadence design|touch sequence; multichannel touch pattern|mix of calls emails and social; cadence length|number of steps"),
         ("Cold Call Openers", "cold call opener|first ten seconds on the phone; permission-based opener|asking for thirty seconds; gatekeeper|front desk"),
         ("Personalization & Triggers", "personalized first line|custom intro sentence; trigger event|reason to reach out now; relevance hook|why them why now"),
         ("Reply Handling", "reply handling|answering responses; not-now reply|maybe later answer; referral to colleague|pointed us to someone else")),
    _sop(3, 1, "Discovery Call Framework", "discovery", "principles mistakes why",
         ("Pain Discovery", "discovery questions|questions that uncover the problem; pain quantification|dollar figure on the problem; current state|how they do it today"),
         ("Impact & Decision Process", "impact questions|cost of doing nothing; decision process|how they buy; decision criteria|what they will judge us on"),
         ("Next Step Commitment", "next step commitment|booked follow-up; recap email|summary note after the call; discovery notes|call write-up"),
         ("Listening Discipline", "talk-to-listen ratio|how much the rep talks; active listening|letting them finish; follow-up questions|digging one level deeper")),
    _sop(3, 2, "Demo Delivery Standards", "demo delivery", "mistakes",
         ("Tailored Demo Storyline", "tailored demo|customised walkthrough; demo script|storyline; use case|their scenario"),
         ("Tell-Show-Tell Structure", "feature dump|showing every button; tell-show-tell|framing before and after each screen; wow moment|the part that lands"),
         ("Technical Deep Dives", "technical questions|deep product questions; sales engineer|solutions consultant; sandbox environment|test account"),
         ("Post-Demo Follow-Up", "demo follow-up|post-demo email; demo recording|call replay; champion enablement|arming our advocate")),
    _sop(3, 3, "Objection Handling", "objections", "principles why",
         ("Price Objections", "price objection|too expensive pushback; discount request|asking for a lower number; value reframe|shifting the talk back to return"),
         ("Competitor Objections", "competitor comparison|also looking at another vendor; battlecard|competitive cheat sheet; differentiator|what sets us apart"),
         ("Timing Objections", "timing objection|not the right quarter; status quo|sticking with what they have; urgency driver|reason to act now"),
         ("Objection Response Method", "objection log|tracking pushback; acknowledge-clarify-respond|hear it, ask, answer; feel-felt-found|empathy framing")),
    _sop(3, 4, "Proposal & Pricing Approval", "proposals", "mistakes",
         ("Proposal Construction", "proposal template|quote document; pricing tiers|plan levels; line items|quote lines"),
         ("Discount Approval Matrix", "discount approval|sign-off for price cuts; deal desk|pricing review team; approval matrix|who can approve what"),
         ("Commercial Terms", "multi-year term|longer contract; payment terms|net 30 or net 60; ramp pricing|stepped price"),
         ("Proposal Walkthrough & Procurement", "proposal walkthrough|presenting the quote live; procurement|purchasing department; redlines|contract edits")),
    _sop(3, 6, "Mutual Action Plans & Deal Closing", "deal closing", "principles",
         ("Mutual Action Plan", "mutual action plan|joint close plan; close date|signature target; milestone owner|who is on the hook"),
         ("Champion Development", "champion|internal advocate; champion test|checking they will fight for us; economic buyer access|getting to the money person"),
         ("Legal & Security Review", "legal review|contracts team look; security questionnaire|infosec review; signature process|e-sign flow"),
         ("Closed-Lost Review", "closed-lost review|post-mortem on lost deals; win-loss interview|asking the buyer why; loss reason|why we lost")),
    _sop(4, 1, "Account Health Scoring", "account health", "why",
         ("Health Score Inputs", "health score|account wellness rating; usage signals|product activity; support ticket volume|help desk load"),
         ("At-Risk Playbook", "red account|at-risk customer; risk playbook|save plan; escalation path|who to call when it is on fire"),
         ("NPS & Sentiment", "NPS survey|would-you-recommend score; detractor follow-up|outreach to unhappy responders; sentiment|mood of the account"),
         ("Health Model Calibration", "health model calibration|checking the score against churn; leading indicator|early warning signal; weighting|how much each input counts")),
    _sop(4, 2, "Quarterly Business Reviews", "business reviews", "principles mistakes",
         ("QBR Agenda & Narrative", "QBR agenda|quarterly review plan; executive summary|top-line recap; ROI evidence|proof of return"),
         ("Attendance & Pre-Read", "decision-maker attendance|leaders in the room; attendee list|invite list; pre-read|deck sent ahead"),
         ("Roadmap & Feedback", "roadmap preview|what is coming in the product; feature requests|asks for new features; product feedback loop|passing requests to product"),
         ("Goals & Action Items", "success plan update|refreshed goals; next-quarter goals|targets for the coming period; action items|to-dos from the meeting")),
    _sop(4, 3, "Renewal Management", "renewals", "mistakes why",
         ("Renewal Forecasting", "renewal forecast|renewal outlook; renewal date|contract end; 120-day renewal window|four months out"),
         ("Price Uplift", "price increase|uplift at renewal; uplift cap|limit on the increase; multi-year renewal|locking in longer"),
         ("Churn Risk & Save Offers", "churn risk|likely to leave; non-renewal notice|cancellation letter; save offer|retention deal"),
         ("Renewal Paperwork", "auto-renewal clause|evergreen term; renewal quote|renewal paperwork; co-termination|aligning end dates")),
    _sop(4, 4, "Expansion & Upsell Plays", "expansion", "principles",
         ("Expansion Signals", "expansion signal|growth hint; seat utilization|licenses in use; usage ceiling|hitting plan limits"),
         ("Cross-Sell Motions", "cross-sell|selling another product; add-on module|extra package; whitespace analysis|untapped departments"),
         ("CSM-to-AE Handoff", "expansion opportunity|upsell deal; account executive handoff|looping in sales; CSM-sourced pipeline|deals found by success"),
         ("Land & Expand Sequencing", "land and expand|starting small and growing; department rollout|next team onboarding; executive alignment|leadership buy-in")),
    _sop(5, 1, "Pipeline Review Cadence", "pipeline reviews", "principles mistakes",
         ("Deal Inspection", "pipeline review|deal inspection meeting; stage aging|deals sitting too long; pipeline coverage|three times quota cover"),
         ("Close Date Hygiene", "deal slippage|pushed close dates; close date hygiene|realistic dates; next step field|what happens next"),
         ("Forecast Call", "forecast call|weekly commit call; commit category|deals we are betting on; best case|upside deals"),
         ("Pipeline Generation Tracking", "pipeline generation|new opportunities created; sourced pipeline|where deals come from; pipeline velocity|how fast deals move")),
    _sop(5, 2, "Forecasting Methodology", "forecasting", "why",
         ("Weighted Forecast", "weighted forecast|probability-based number; stage probability|win odds per stage; forecast accuracy|how close we land"),
         ("Judgment & Overrides", "rep judgment|gut call; manager override|leader adjustment; roll-up|team total"),
         ("Historical Baselines", "historical win rate|past close rate; cohort analysis|looking at groups of deals; seasonality|time-of-year swings"),
         ("Variance Review", "forecast variance|gap between the call and the result; sandbagging|lowballing the number; happy ears|over-optimism")),
    _sop(5, 3, "CRM Data Hygiene", "CRM data quality", "mistakes",
         ("Required Fields & Validation", "required fields|mandatory properties; field validation|input rules; picklist values|dropdown options"),
         ("Duplicate Management", "duplicate records|copies of the same account; merge rules|combining duplicates; data steward|owner of data quality"),
         ("Activity Capture", "activity logging|recording calls and emails; email sync|inbox capture; call disposition|call outcome"),
         ("Data Decay & Enrichment", "data decay|stale contact info; enrichment vendor|data provider; bounce rate|undeliverable emails")),
    _sop(5, 4, "Revenue Dashboard & KPI Reporting", "revenue reporting", "principles why",
         ("KPI Definitions", "KPI definitions|metric meanings; bookings|signed revenue; annual recurring revenue|yearly subscription revenue"),
         ("Funnel Conversion Metrics", "conversion rate|stage-to-stage percentage; win rate|close rate; sales cycle length|days to close"),
         ("Dashboard Governance", "dashboard refresh|report update; single source of truth|one trusted number; board reporting|investor deck metrics"),
         ("Attribution Model", "attribution model|credit for deals; first touch|original source; multi-touch attribution|shared credit")),
    _sop(6, 1, "New Rep Onboarding & Ramp", "rep ramp", "principles mistakes why",
         ("Ramp Plan", "ramp plan|first ninety days; ramp quota|reduced target; time to productivity|how long until they sell"),
         ("Certification & Practice", "product certification|product test; mock calls|practice calls; shadowing|sitting in on calls"),
         ("Buddy & Milestones", "onboarding buddy|peer mentor; 30-60-90 plan|milestone plan; ramp check-in|progress review"),
         ("Ramp Metrics", "first deal|first signature; ramp metrics|new-hire numbers; attrition risk|new hire leaving")),
    _sop(6, 2, "Call Coaching & Review", "call coaching", "principles",
         ("Call Review Process", "call review|listening to recordings; coaching scorecard|grading rubric; call library|best-call collection"),
         ("One-on-One Coaching", "one-on-one coaching|weekly 1:1; skill gap|weak spot; development plan|growth plan"),
         ("Peer Review & Game Tape", "peer review|reps reviewing each other; game tape session|recorded calls session; feedback loop|quick notes back"),
         ("Coaching Cadence", "behavior change|doing things differently; coaching cadence|how often we coach; manager time allocation|leader hours")),
    _sop(6, 3, "Sales Compensation & Quota Setting", "compensation", "mistakes",
         ("Quota Setting", "quota setting|target assignment; capacity model|how many reps we need; territory potential|size of the patch"),
         ("Commission Plan", "commission plan|pay plan; accelerators|higher rate over target; clawback|commission taken back"),
         ("SPIFFs & Incentives", "SPIFF|short-term bonus; contest timing|when contests run; behavior incentive|paying for the right actions"),
         ("Crediting & Disputes", "comp dispute|pay argument; crediting rules|who gets credit; split deal|shared commission")),
)


@dataclass(frozen=True)
class Planted:
    """A topic the playbook does not cover; its entries should become one new SOP."""

    key: str
    module: int  # where a new SOP on it belongs


PLANTED: tuple[Planted, ...] = (
    Planted("marketplace", 3),  # buying through a cloud marketplace (AWS private offers, co-sell)
    Planted("events", 2),  # trade show booths and badge-scan follow-up
)

NOISE: tuple[str, ...] = (
    "Reminder that the office coffee machine on the third floor is broken again; facilities says Thursday.",
    "The team offsite in Lisbon moved to the second week of March, so please rebook flights before Friday.",
    "Benefits enrollment closes on the 15th and the HR portal keeps logging people out mid-form.",
    "Someone left a blue umbrella in meeting room Kepler, it is at reception now.",
    "Parking garage access cards are being replaced next month; the old ones stop working on the 1st.",
)
