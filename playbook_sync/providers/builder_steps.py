"""The Playbook Builder's two structured calls for the Anthropic and OpenAI providers.

`draft_playbook` answers a playbook's structure (3-6 scenarios); `write_content_modules`
answers one scenario's content modules plus, per module, the ids of the sources it used.
Both have strict schemas (every property required, no extra keys) sent as a forced tool or
a JSON-schema response format; the sources lead the task as a cacheable block. The calls
use the drafting model (PLAYBOOK_SYNC_MODEL_NEW_SOP) and are metered under their own step
names. `BuilderSteps` is mixed into the providers' classes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from playbook_sync import prompts
from playbook_sync.builder.models import (
    MODULE_NAMES,
    ContentModules,
    DealStage,
    ModulesDraft,
    ModulesRequest,
    OutlineRequest,
    PlaybookOutline,
    Source,
)
from playbook_sync.providers.structured import InvalidAnswer, PromptParts, Step, _obj, _validate

_STR = {"type": "string"}
_LINES = {"type": "array", "items": _STR}
OUTLINE = Step("builder_outline", "build_playbook", "draft_playbook", "Design the playbook's scenarios.",
               _obj({"description": _STR, "scenarios": {"type": "array", "items": _obj({
                   "title": _STR, "deal_stage": {"type": "string", "enum": [s.value for s in DealStage]},
                   "meeting_context": _STR, "customer_pain_points": _LINES, "competitors": _LINES})}}))
MODULES = Step("builder_modules", "build_modules", "write_content_modules",
               "Write one scenario's content modules and name the sources each module used.",
               _obj({"opening_strategy": _STR, "key_messages": _LINES, "value_propositions": _LINES,
                     "discovery_questions": _LINES,
                     "objection_handling": {"type": "array", "items": _obj({"objection": _STR, "response": _STR})},
                     "next_steps": _LINES,
                     "sources": _obj({name: _LINES for name in MODULE_NAMES})}))
DRAFTING_MODEL = "new_sop"  # the builder drafts as the new-SOP step does: the same model setting


def sources_block(sources: Sequence[tuple[str, Source]]) -> str:
    """Each source with the id the model cites it by."""
    if not sources:
        return "(none found: write from the request alone and cite nothing)"
    return "\n".join(f'<source id="{ref}" type="{s.type}" title="{s.title.replace(chr(34), chr(39))}">\n{s.text}\n</source>' for ref, s in sources)


def _feedback(error: str) -> str:
    return f"\n\nYour previous answer was rejected: {error}. Answer again, following the rules." if error else ""


def outline_parts(prompt: prompts.Prompt, request: OutlineRequest, error: str = "") -> PromptParts:
    task = prompt.render("task", title=request.title, persona=request.target_persona or "(any)",
                         industry=request.industry or "(any)", product_line=request.product_line or "(any)",
                         goals=request.goals or "(none given)", count=request.scenarios, feedback=_feedback(error))
    return PromptParts(prompt.render("system"), (prompt.render("sources", sources=sources_block(request.sources)),), task)


def modules_parts(prompt: prompts.Prompt, request: ModulesRequest, error: str = "") -> PromptParts:
    scenario = request.scenario.model_dump(mode="json", exclude={"content_modules"})
    task = prompt.render("task", playbook=request.playbook_title, persona=request.target_persona or "(any)",
                         industry=request.industry or "(any)", product_line=request.product_line or "(any)",
                         scenario=json.dumps(scenario, ensure_ascii=False, indent=1), modules=", ".join(request.modules),
                         feedback=_feedback(error))
    return PromptParts(prompt.render("system"), (prompt.render("sources", sources=sources_block(request.sources)),), task)


def parse_outline(data: object, request: OutlineRequest) -> PlaybookOutline:
    outline = _validate(PlaybookOutline, data)
    if not 3 <= len(outline.scenarios) <= 6:
        raise InvalidAnswer(f"scenarios must have 3 to 6 items ({request.scenarios} asked), got {len(outline.scenarios)}")
    return outline


def parse_modules(data: object, request: ModulesRequest) -> ModulesDraft:
    if not isinstance(data, dict):
        raise InvalidAnswer("answer must be an object")
    cited = data.get("sources")
    modules = _validate(ContentModules, {k: v for k, v in data.items() if k != "sources"})
    if not isinstance(cited, dict):
        raise InvalidAnswer("sources: must map each module to a list of source ids")
    known = {ref for ref, _ in request.sources}
    used: dict[str, list[str]] = {}
    for module, refs in cited.items():
        if module not in MODULE_NAMES or not isinstance(refs, list):
            raise InvalidAnswer(f"sources.{module}: not a module, or not a list of ids")
        if unknown := [r for r in refs if r not in known]:
            raise InvalidAnswer(f"sources.{module}: unknown source ids {unknown[:3]} (use only {sorted(known)[:8]})")
        if refs:
            used[module] = list(dict.fromkeys(refs))
    return ModulesDraft(modules=modules, module_sources=used)


class BuilderSteps:
    """generate_outline / generate_modules for a StructuredLLM (Anthropic, OpenAI)."""

    def _builder_ask(self, step: Step, build, parse):
        self.models.setdefault(step.name, self.models[DRAFTING_MODEL])
        return self._ask(step, build, parse)

    def generate_outline(self, request: OutlineRequest) -> PlaybookOutline:
        """The playbook's structure: description and 3-6 scenarios."""
        prompt = self.prompts[OUTLINE.prompt]
        return self._builder_ask(OUTLINE, lambda e: outline_parts(prompt, request, e), lambda d: parse_outline(d, request))

    def generate_modules(self, request: ModulesRequest) -> ModulesDraft:
        """One scenario's content modules with the sources each used."""
        prompt = self.prompts[MODULES.prompt]
        return self._builder_ask(MODULES, lambda e: modules_parts(prompt, request, e), lambda d: parse_modules(d, request))
