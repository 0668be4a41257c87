"""The four judgment steps as structured calls, shared by the Anthropic and OpenAI providers.

Each step has a prompt (prompt_templates/), a strict JSON schema (sent as an Anthropic tool or an
OpenAI response format) and a pydantic parser. The schemas do not vary per request: the
tool definition leads the cached prompt prefix, so it must stay byte-identical. What
varies (how many candidates, which callout type) is checked when the answer is parsed.
A provider supplies `_request()`; `StructuredLLM` re-asks, with the error, when an
answer does not parse, up to PLAYBOOK_SYNC_LLM_OUTPUT_RETRIES times.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from playbook_sync import callouts, excerpts, prompts
from playbook_sync.homes import limit_homes
from playbook_sync.providers.base import ProviderError
from playbook_sync.schemas import (
    BlockAsk,
    CalloutDraft,
    CalloutKind,
    CalloutRequest,
    ClassifyRequest,
    Decision,
    Entry,
    NewSopRequest,
    SopDraft,
    SopEditRequest,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
CALLOUT_TYPES = ("tip", "warning", "info", "note")
_SOURCES = {"coaching": "coaching call", "sales": "sales call", "report": "execution report"}


class InvalidAnswer(ProviderError):
    """The model answered, but not in the required shape; worth asking again."""


@dataclass(frozen=True)
class Step:
    """One structured call: metering name, prompt file, tool/format name and schema."""

    name: str  # classify | edit | cluster | new_sop (cp_llm_calls.step)
    prompt: str
    tool: str
    description: str
    schema: Mapping[str, object]


@dataclass(frozen=True)
class PromptParts:
    """A rendered prompt: stable system text, cacheable blocks (SOP texts), the varying task."""

    system: str
    blocks: tuple[str, ...]
    task: str
    # The first block is the same for every call it appears in (a whole SOP, best candidate first):
    # worth a cache breakpoint, since entries with the same best SOP share the prefix up to it.
    cache_first: bool = False


def _obj(properties: dict[str, object]) -> dict[str, object]:
    # Strict mode on both services wants every property required and no extra keys.
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


_STR = {"type": "string"}
CLASSIFY = Step("classify", "classify_entry", "record_classification",
                "Record one decision for every candidate SOP of the knowledge entry.",
                _obj({"decisions": {"type": "array", "items": _obj({
                    "sop_path": {"type": "string", "description": "the path of the candidate SOP"},
                    "action": {"type": "string", "enum": ["enrich", "redundant", "tangential"]},
                    "section": {"type": "string", "description": "heading of the best section, or empty"},
                    "rationale": {"type": "string", "description": "one sentence"},
                    "confidence": {"type": "number", "description": "0 to 1"},
                })}}))
# One call per SOP: a callout for every block the SOP gets this run (issue 12).
EDIT = Step("edit", "generate_edit", "write_callouts",
            "Propose one callout per requested block of the SOP, each with the SOP line it goes after.",
            _obj({"callouts": {"type": "array", "items": _obj({
                "block": {"type": "string", "description": "the block id, e.g. b1"},
                "anchor": {"type": "string", "description": "one line copied exactly from the SOP"},
                "callout_type": {"type": "string", "enum": list(CALLOUT_TYPES)},
                "title": _STR,
                "body": {"type": "string", "description": "1 to 3 sentences"}})}}))
CLUSTER = Step("cluster", "name_cluster", "name_cluster", "Name the topic the entries share.",
               _obj({"label": {"type": "string", "description": "2 to 5 words, Title Case"}}))
NEW_SOP = Step("new_sop", "draft_sop", "draft_sop", "Draft the content of a new SOP.",
               _obj({"title": _STR, "overview": _STR,
                     "steps": {"type": "array", "items": _STR},
                     "key_lessons": {"type": "array", "items": _STR}}))
STEPS = {s.name: s for s in (CLASSIFY, EDIT, CLUSTER, NEW_SOP)}


# -- answers ----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Decision(_Strict):
    sop_path: str
    action: Literal["enrich", "redundant", "tangential"]
    section: str
    rationale: str = Field(min_length=1, max_length=1000)
    confidence: float = Field(ge=0.0, le=1.0)


class _Classification(_Strict):
    decisions: list[_Decision]


class InsertionPlan(_Strict):
    """Where a callout goes (a line copied from the SOP) and what it says."""

    anchor: str = Field(min_length=1, max_length=1000)
    callout_type: Literal["tip", "warning", "info", "note"]
    title: str = Field(max_length=80)
    body: str = Field(min_length=1, max_length=1200)

    @field_validator("body")
    @classmethod
    def _one_to_three_sentences(cls, body: str) -> str:
        count = len(callouts.sentences(" ".join(body.split())))
        if not 1 <= count <= 3:
            raise ValueError(f"body must be 1 to 3 sentences, got {count}")
        return body


class _Callout(InsertionPlan):
    block: str


class _Callouts(_Strict):
    callouts: list[_Callout]


class _ClusterName(_Strict):
    label: str = Field(min_length=2, max_length=60)

    @field_validator("label")
    @classmethod
    def _short(cls, label: str) -> str:
        if "\n" in label or len(label.split()) > 8:
            raise ValueError("label must be one short line of at most 8 words")
        return label


def _validate(model: type[M], data: object) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors()[:3]]
        raise InvalidAnswer("; ".join(problems)) from None


def parse_classification(data: object, request: ClassifyRequest) -> list[Decision]:
    """Exactly one decision per candidate, in candidate order; `enrich` for at most two SOPs."""
    answer = _validate(_Classification, data)
    wanted = [c.sop_path for c in request.candidates]
    got: dict[str, _Decision] = {}
    for d in answer.decisions:
        if d.sop_path not in wanted:
            raise InvalidAnswer(f"decision for {d.sop_path!r}, which is not a candidate ({', '.join(wanted)})")
        if d.sop_path in got:
            raise InvalidAnswer(f"two decisions for {d.sop_path!r}")
        got[d.sop_path] = d
    missing = [p for p in wanted if p not in got]
    if missing:
        raise InvalidAnswer(f"no decision for {', '.join(missing)}")
    decisions = [Decision(sop_path=p, action=got[p].action, section=got[p].section or None,
                          rationale=got[p].rationale, confidence=got[p].confidence) for p in wanted]
    return limit_homes(request.candidates, decisions)  # one home per entry (two when the model says so)


def callout_header(kind: CalloutKind, entries: Sequence[Entry]) -> tuple[str, str]:
    """The admonition type and title our renderer uses for these entries (DESIGN §1 table)."""
    opener = callouts.render_block(kind, "x.", {e.transcript_type for e in entries}).split("\n", 1)[0]
    kind_name, _, title = opener.removeprefix(":::").partition(" ")
    return kind_name, title


def parse_edits(data: object, request: SopEditRequest) -> dict[str, CalloutDraft]:
    """Block id → insertion plan: exactly one per block, each of its block's callout type (anchors: sop_edits.py)."""
    answer = _validate(_Callouts, data)
    wanted = {b.key: b for b in request.blocks}
    got: dict[str, CalloutDraft] = {}
    for plan in answer.callouts:
        block = wanted.get(plan.block)
        if block is None:
            raise InvalidAnswer(f"callout for block {plan.block!r}, which was not asked for ({', '.join(wanted)})")
        if plan.block in got:
            raise InvalidAnswer(f"two callouts for block {plan.block!r}")
        required, _ = callout_header(block.kind, block.entries)
        if plan.callout_type != required:
            raise InvalidAnswer(f"block {plan.block}: callout_type must be {required!r}, got {plan.callout_type!r}")
        got[plan.block] = CalloutDraft(body=plan.body, anchor=plan.anchor, callout_type=plan.callout_type, title=plan.title)
    missing = [k for k in wanted if k not in got]
    if missing:
        raise InvalidAnswer(f"no callout for block {', '.join(missing)}")
    return got


def parse_cluster(data: object) -> str:
    """The cluster label."""
    return _validate(_ClusterName, data).label


def parse_draft(data: object) -> SopDraft:
    """A new-SOP draft with at least one step and one lesson."""
    return _validate(SopDraft, data)


# -- prompts ----------------------------------------------------------------------------


def _entry_block(number: int, entry: Entry) -> str:
    tags = ", ".join(entry.tags) or "none"
    source = _SOURCES.get(entry.transcript_type.value, entry.transcript_type.value)
    context = f"\nContext: {entry.context}" if entry.context else ""
    return f'<entry n="{number}" category="{entry.category.value}" source="{source}" tags="{tags}">\n{entry.content}{context}\n</entry>'


def _entries(entries: Sequence[Entry]) -> str:
    return "\n".join(_entry_block(i, e) for i, e in enumerate(entries, 1))


def _feedback(error: str) -> str:
    return f"\n\nYour previous answer was rejected: {error}. Answer again, following the rules." if error else ""


def sop_block(prompt: prompts.Prompt, path: str, title: str, text: str) -> str:
    """One candidate SOP as the classifier sees it."""
    return prompt.render("sop", path=path, title=title, sop_text=text)


def classify_parts(prompt: prompts.Prompt, request: ClassifyRequest, error: str = "") -> PromptParts:
    """System rubric, then each candidate SOP (best first), then the entry."""
    entry = request.entry
    listing = "\n".join(f'- {c.sop_path}: best section "{c.section}", similarity {c.similarity:.2f} ({c.band})'
                        + _lessons(c.lessons) for c in request.candidates)
    task = prompt.render("task", category=entry.category.value,
                         source=_SOURCES.get(entry.transcript_type.value, entry.transcript_type.value),
                         tags=", ".join(entry.tags) or "none", content=entry.content, context=entry.context or "",
                         candidates=listing, feedback=_feedback(error))
    # Per candidate its outline and best-matching sections (~1.5k tokens, ~1k for runners-up), not the whole file.
    sizes = [excerpts.CLASSIFY_CHARS] + [excerpts.RUNNER_UP_CHARS] * (len(request.candidates) - 1)
    shown = [excerpts.for_candidate(c.sop_text, [c.section, *c.sections], size)
             for c, size in zip(request.candidates, sizes, strict=True)]
    blocks = tuple(sop_block(prompt, c.sop_path, c.title, text) for c, text in zip(request.candidates, shown, strict=True))
    return PromptParts(prompt.render("system"), blocks, task, cache_first=shown[0].startswith(excerpts.WHOLE))


def _lessons(lessons: Sequence[str]) -> str:
    """Editors' lessons for one SOP (lessons.py), in the per-call task part: the cached prefix stays the same."""
    return "".join(f"\n  lesson from this SOP's editors: {x}" for x in lessons)


def _block_ask(block: BlockAsk) -> str:
    kind, title = callout_header(block.kind, block.entries)
    return (f"Block {block.key}\nTarget section: \"{block.section}\"\nRequired callout_type: {kind}\n"
            f"Required title: {title}\nEntries to merge into this block's callout:\n{_entries(block.entries)}")


def edit_parts(prompt: prompts.Prompt, request: SopEditRequest, error: str = "") -> PromptParts:
    """System rules, then the SOP's outline and excerpts, then every block with its entries."""
    problem = "; ".join(filter(None, [request.feedback, error]))
    task = prompt.render("task", blocks="\n\n".join(_block_ask(b) for b in request.blocks),
                         lessons=_lessons(request.lessons), feedback=_feedback(problem))
    sop = prompt.render("sop", path=request.sop_path, title=request.sop_title, outline=request.outline,
                        excerpts=request.excerpts)
    return PromptParts(prompt.render("system"), (sop,), task)


def one_block(request: CalloutRequest) -> SopEditRequest:
    """A single-callout request as an SOP edit of one block."""
    shape = excerpts.outline((p.level, p.heading) for p in excerpts.split(request.sop_text))
    text = request.section_text or excerpts.clip(request.sop_text, excerpts.EDIT_CHARS)
    return SopEditRequest(sop_path=request.sop_path, sop_title=request.sop_title, outline=shape, excerpts=text,
                          feedback=request.feedback, lessons=request.lessons,
                          blocks=[BlockAsk(key="b1", section=request.section, kind=request.kind, entries=request.entries)])


def cluster_parts(prompt: prompts.Prompt, entries: Sequence[Entry], error: str = "") -> PromptParts:
    """System rules, then the entries."""
    return PromptParts(prompt.render("system"), (), prompt.render("task", entries=_entries(entries), feedback=_feedback(error)))


def draft_parts(prompt: prompts.Prompt, request: NewSopRequest, error: str = "") -> PromptParts:
    """System rules, then module, label and entries."""
    task = prompt.render("task", module=request.module, label=request.cluster_label,
                         entries=_entries(request.entries), feedback=_feedback(error))
    return PromptParts(prompt.render("system"), (), task)


def answered(call: Callable[[], T]) -> T:
    """Run an SDK request; a 200 whose body is not JSON (a proxy's page) becomes InvalidAnswer."""
    try:
        return call()
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(f"response body is not JSON ({exc.msg})") from None


def loads(text: str) -> object:
    """JSON text from a model, as InvalidAnswer when it is not JSON."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InvalidAnswer(f"answer is not valid JSON ({exc})") from None


# -- the provider-neutral LLM -------------------------------------------------------------


class StructuredLLM:
    """The LLM protocol over structured calls; subclasses implement `_request`."""

    provider = "structured"
    default_models: Mapping[str, str] = {}

    def __init__(self, settings) -> None:
        self.prompts = prompts.load_all(settings.prompts_dir)  # fails here, at start-up, on a bad prompt
        self.models = {name: getattr(settings, f"model_{name}") or self.default_models[name] for name in STEPS}
        self.max_tokens = settings.llm_max_tokens
        self.output_retries = settings.llm_output_retries

    def _request(self, step: Step, parts: PromptParts, model: str) -> object:
        """Send one structured call (with transport retries), report its usage, return the parsed JSON."""
        raise NotImplementedError

    def _ask(self, step: Step, build: Callable[[str], PromptParts], parse: Callable[[object], T]) -> T:
        error = ""
        for _ in range(self.output_retries + 1):
            try:
                return parse(self._request(step, build(error), self.models[step.name]))
            except InvalidAnswer as exc:
                error = str(exc)
        raise ProviderError(f"{self.provider} {step.name} answer still invalid after {self.output_retries + 1} "
                            f"attempts: {error} (limit: PLAYBOOK_SYNC_LLM_OUTPUT_RETRIES)")

    def classify(self, request: ClassifyRequest) -> list[Decision]:
        """One call per entry, covering all its candidate SOPs."""
        if not request.candidates:
            raise ProviderError("classify() needs at least one candidate")
        prompt = self.prompts[CLASSIFY.prompt]
        return self._ask(CLASSIFY, lambda e: classify_parts(prompt, request, e), lambda d: parse_classification(d, request))

    def write_callout(self, request: CalloutRequest) -> CalloutDraft:
        """An insertion plan: anchor line, callout type, title, 1-3 sentences."""
        if not request.entries:
            raise ProviderError("write_callout() needs at least one entry")
        return self.write_callouts(one_block(request))["b1"]

    def write_callouts(self, request: SopEditRequest) -> dict[str, CalloutDraft]:
        """One call for all of an SOP's blocks: block id → insertion plan."""
        if not request.blocks or any(not b.entries for b in request.blocks):
            raise ProviderError("write_callouts() needs at least one block, each with at least one entry")
        prompt = self.prompts[EDIT.prompt]
        return self._ask(EDIT, lambda e: edit_parts(prompt, request, e), lambda d: parse_edits(d, request))

    def name_cluster(self, entries: Sequence[Entry]) -> str:
        """A short topic label (the cheaper model)."""
        if not entries:
            raise ProviderError("name_cluster() needs at least one entry")
        prompt = self.prompts[CLUSTER.prompt]
        return self._ask(CLUSTER, lambda e: cluster_parts(prompt, entries, e), parse_cluster)

    def draft_sop(self, request: NewSopRequest) -> SopDraft:
        """A structured draft our template renders."""
        if not request.entries:
            raise ProviderError("draft_sop() needs at least one entry")
        prompt = self.prompts[NEW_SOP.prompt]
        return self._ask(NEW_SOP, lambda e: draft_parts(prompt, request, e), parse_draft)
