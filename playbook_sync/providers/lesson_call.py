"""The lessons step for the real providers: one small structured call per SOP with editor changes.

Same machinery as the other steps (structured.StructuredLLM: tool/JSON-schema answer,
metered as step `lessons`, asked again on an invalid answer) on the cheaper `cluster`
model: a lesson is a sentence, not a judgement call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field, ValidationError

from playbook_sync.providers.base import ProviderError
from playbook_sync.providers.structured import InvalidAnswer, PromptParts, Step, StructuredLLM, _feedback, _obj
from playbook_sync.schemas import Category

MAX_LESSONS = 3
LESSONS = Step("lessons", "extract_lessons", "record_lessons", "Record short lessons for this SOP's callouts.",
               _obj({"lessons": {"type": "array", "items": _obj({
                   "category": {"type": "string", "enum": [c.value for c in Category]},
                   "kind": {"type": "string", "enum": ["declined", "edited"]},
                   "text": {"type": "string", "description": "one imperative sentence, at most 30 words"}})}}))


class _Lesson(BaseModel):
    category: Category
    kind: str = Field(pattern="^(declined|edited)$")
    text: str = Field(min_length=3, max_length=400)


class _Answer(BaseModel):
    lessons: list[_Lesson] = Field(max_length=MAX_LESSONS)


def describe(changes: Sequence[Mapping[str, str]]) -> str:
    """One line per change: category, what became of it, what we wrote and what it reads now."""
    out = []
    for c in changes:
        now = f'; it now reads: "{c["now"]}"' if c.get("now") else ""
        out.append(f'- {c["category"]} callout {c["state"]}: we wrote "{c["written"]}"{now}')
    return "\n".join(out)


def extract(llm: StructuredLLM, sop_path: str, changes: Sequence[Mapping[str, str]]) -> list[tuple[str, str, str]]:
    """(category, kind, text) lessons the model draws from one SOP's changes."""
    prompt = llm.prompts[LESSONS.prompt]
    error = ""
    for _ in range(llm.output_retries + 1):
        parts = PromptParts(prompt.render("system"), (), prompt.render(
            "task", sop=sop_path, changes=describe(changes), feedback=_feedback(error)))
        try:
            answer = _Answer.model_validate(llm._request(LESSONS, parts, llm.models["cluster"]))
        except (ValidationError, InvalidAnswer) as exc:
            error = str(exc)[:500]
            continue
        return [(x.category.value, x.kind, " ".join(x.text.split())) for x in answer.lessons]
    raise ProviderError(f"{llm.provider} lessons answer still invalid after {llm.output_retries + 1} attempts: {error}")
