"""The offline provider's playbook generation: deterministic, built only from the request and its sources.

No model: scenarios follow the deal stages a playbook of that size needs, and every module's
lines are sentences of the grounding sources (SOP sections, knowledge entries) or are built
from the request's own words, so the demo and the tests get real, traceable content.
"""

from __future__ import annotations

import re

from playbook_sync.builder.models import (
    ContentModules,
    DealStage,
    ModulesDraft,
    ModulesRequest,
    ObjectionResponse,
    OutlineRequest,
    PlaybookOutline,
    ScenarioOutline,
    Source,
)

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W_]{3,}")
_COMPETITORS = re.compile(r"(?:competitors?|against|vs\.?|versus)\s*:?\s*((?:[A-Z][\w&.-]*)(?:\s*(?:,|and)\s*[A-Z][\w&.-]*)*)")
PLAN = {3: ["discovery", "demo", "closing"], 4: ["discovery", "demo", "proposal", "negotiation"],
        5: ["prospecting", "discovery", "demo", "proposal", "closing"],
        6: ["prospecting", "discovery", "demo", "proposal", "negotiation", "closing"]}
TITLES = {"prospecting": "First Outreach to {p}", "discovery": "Discovery Call with {p}", "demo": "Product Demo for {p}",
          "proposal": "Proposal Review with {p}", "negotiation": "Negotiation with {p}", "closing": "Closing Call with {p}",
          "expansion": "Expansion Conversation with {p}"}
CONTEXT = {"prospecting": "A first touch: earn a meeting by showing we understand their world.",
           "discovery": "A first meeting: learn their pains, priorities and how they buy.",
           "demo": "Show the product against the pains heard in discovery, nothing more.",
           "proposal": "Walk through scope, price and the plan in writing; confirm who signs.",
           "negotiation": "Terms, procurement and legal: trade, never give.",
           "closing": "Get the signature and agree the first weeks after it.",
           "expansion": "An existing customer: grow from the results they already have."}
NEXT = {"prospecting": ["Book a discovery call with a clear agenda.", "Send one relevant example from their industry."],
        "discovery": ["Summarise the pains you heard in writing within 24 hours.", "Book the demo with everyone who decides."],
        "demo": ["Send the recording and the two moments that matched their pains.", "Agree the proposal date."],
        "proposal": ["Confirm the decision process and the date of the decision.", "Offer a call with a reference customer."],
        "negotiation": ["List what was traded for what, in writing.", "Set the signature date with the buyer."],
        "closing": ["Send the contract for signature today.", "Introduce the onboarding lead and the kick-off date."],
        "expansion": ["Share the results report with the sponsor.", "Propose the next team to roll out to."]}


def _first(text: str) -> str:
    sentence = _SENTENCE.split(" ".join(text.split()))[0].strip().rstrip("…")
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def _kind(source: Source) -> str:
    """section | question | intel | insight, read from the source's type and title."""
    if source.type == "report":
        return "insight"  # what worked in a completed execution
    if source.type != "entry":
        return "section"
    head = source.title.split(" from ", 1)[0]
    return {"question": "question", "product intel": "intel"}.get(head, "insight")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def outline(request: OutlineRequest) -> PlaybookOutline:
    """3-6 scenarios along the deal stages; pains from the goals and the sources, rotated per scenario."""
    persona = request.target_persona or "the Buyer"
    count = max(3, min(6, request.scenarios))
    goals = [s for s in (_first(p) for p in _SENTENCE.split(request.goals) if p.strip()) if len(s) > 3]
    found = [_first(s.text) for _, s in request.sources if _kind(s) in ("question", "insight") and s.text]
    pains = list(dict.fromkeys(goals + found)) or [f"Getting value from {request.product_line or 'the product'} quickly."]
    competitors = []
    if match := _COMPETITORS.search(request.goals):
        competitors = [c.strip(" .") for c in re.split(r",|\band\b", match.group(1)) if c.strip(" .")][:5]
    scenarios = []
    for i, stage in enumerate(PLAN[count]):
        rotated = (pains[i % len(pains):] + pains[: i % len(pains)])[:3]
        where = " ".join(filter(None, [request.industry, persona]))
        scenarios.append(ScenarioOutline(title=TITLES[stage].format(p=persona), deal_stage=DealStage(stage),
                                         meeting_context=f"{CONTEXT[stage]} Audience: {where}.",
                                         customer_pain_points=rotated, competitors=competitors))
    grounded = f" Grounded in {len(request.sources)} sources from our SOPs and calls." if request.sources else ""
    what = request.product_line or "our offer"
    description = (f"How we sell {what} to {persona}" + (f" in {request.industry}" if request.industry else "")
                   + f", from first contact to signature.{grounded}" + (f" Goals: {' '.join(goals)}" if goals else ""))
    return PlaybookOutline(description=description[:4000], scenarios=scenarios)


def modules(request: ModulesRequest) -> ModulesDraft:
    """Every content module from the sources; module_sources names the refs each one used."""
    scenario = request.scenario
    by_kind: dict[str, list[tuple[str, Source]]] = {}
    for ref, source in request.sources:
        by_kind.setdefault(_kind(source), []).append((ref, source))
    sections, questions = by_kind.get("section", []), by_kind.get("question", [])
    insights, intel = by_kind.get("insight", []), by_kind.get("intel", [])
    persona = request.target_persona or "the buyer"
    pains = scenario.customer_pain_points or [f"getting results from {request.product_line or 'the product'}"]
    used: dict[str, list[str]] = {}

    lead = sections[:1] or insights[:1]
    opening = f"Open by naming what matters to {persona}: {pains[0].rstrip('.')}."
    if lead:
        opening += f" {_first(lead[0][1].text)}"
        used["opening_strategy"] = [lead[0][0]]
    messages = (insights + sections)[:3]
    used["key_messages"] = [r for r, _ in messages]
    value = [(r, _first(s.text)) for r, s in intel[:3]]
    values = [v for _, v in value] or [f"{request.product_line or 'We'} address {p.rstrip('.').lower()}." for p in pains[:3]]
    used["value_propositions"] = [r for r, _ in value]
    asked = [(r, _first(s.text)) for r, s in questions[:3]]
    questions_out = [q if q.endswith("?") else q.rstrip(".") + "?" for _, q in asked]
    questions_out += [f"How do you handle {p.rstrip('.?').lower()} today?" for p in pains[:2]]
    used["discovery_questions"] = [r for r, _ in asked]
    objections, objection_refs = [], []
    for ref, source in (questions + insights)[:3]:
        concern = _first(source.text)
        best = max(((r, s) for r, s in sections), key=lambda rs: (len(_words(rs[1].text) & _words(concern)), rs[0]),
                   default=None)
        answer = f"What has worked: {_first(best[1].text)}" if best else "Acknowledge it, then ask what a good outcome would look like."
        objections.append(ObjectionResponse(objection=concern, response=answer))
        objection_refs += [ref] + ([best[0]] if best else [])
    if not objections:
        objections = [ObjectionResponse(objection="We are happy with what we have today.",
                                        response=f"Ask what {pains[0].rstrip('.').lower()} costs them now, then compare.")]
    used["objection_handling"] = list(dict.fromkeys(objection_refs))
    stage = scenario.deal_stage.value if isinstance(scenario.deal_stage, DealStage) else str(scenario.deal_stage)
    used = {k: v for k, v in used.items() if v}
    return ModulesDraft(modules=ContentModules(
        opening_strategy=opening, key_messages=[_first(s.text) for _, s in messages] or [f"We solve {pains[0]}"],
        value_propositions=values, discovery_questions=list(dict.fromkeys(questions_out)),
        objection_handling=objections, next_steps=NEXT.get(stage, NEXT["discovery"])), module_sources=used)
