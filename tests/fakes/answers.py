"""The fake "model" behind the fake Anthropic and OpenAI servers: schema-valid answers.

It reads our prompts the way a model would (the candidate list, the target section, the
required callout type) and answers deterministically: the best candidate SOP is
enriched, the others are tangential; a callout is anchored on its section's heading
line. Tests swap in their own responder to script other answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Responder = Callable[[str, Mapping[str, Any], str], Any]  # (tool/format name, schema, prompt text) -> answer

_CANDIDATE = re.compile(r'^- (\S+): best section "([^"]*)"', re.MULTILINE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _entries(prompt: str) -> list[str]:
    return [m.strip() for m in re.findall(r"<entry[^>]*>\n(.*?)\n</entry>", prompt, re.DOTALL)]


def _first_sentence(text: str) -> str:
    first = _SENTENCE.split(" ".join(text.split()))[0].split("Context:")[0].strip()
    return first if first.endswith((".", "!", "?")) else first + "."


def classify(prompt: str) -> dict:
    """Enrich the best candidate, call the others tangential."""
    candidates = _CANDIDATE.findall(prompt)
    return {"decisions": [
        {"sop_path": path, "action": "enrich" if i == 0 else "tangential", "section": section,
         "rationale": "Adds a concrete tactic this SOP does not have yet." if i == 0 else "Belongs to another SOP.",
         "confidence": 0.8 if i == 0 else 0.6}
        for i, (path, section) in enumerate(candidates)]}


def anchor_for(prompt: str, section: str) -> str:
    """The heading line of the target section in the SOP text (a line copied from the SOP)."""
    sop = re.search(r"<sop [^>]*>\n(.*?)\n</sop>", prompt, re.DOTALL)
    lines = sop.group(1).splitlines() if sop else []
    heading = next((line for line in lines if re.fullmatch(rf"#{{2,3}}\s+{re.escape(section)}\s*", line)), None)
    return heading or next((line for line in lines if line.startswith("# ")), lines[-1] if lines else section)


def callout(prompt: str, text: str | None = None) -> dict:
    """An insertion plan under the target section's heading (text: one block's part of the prompt)."""
    text = prompt if text is None else text
    section = re.search(r'^Target section: "(.*)"$', text, re.MULTILINE)
    kind = re.search(r"^Required callout_type: (\S+)$", text, re.MULTILINE)
    title = re.search(r"^Required title: (.*)$", text, re.MULTILINE)
    entries = _entries(text) or ["Apply what the field learned."]
    body = " ".join(dict.fromkeys(_first_sentence(e) for e in entries[:3]))
    return {"anchor": anchor_for(prompt, section.group(1) if section else ""),
            "callout_type": kind.group(1) if kind else "tip", "title": title.group(1) if title else "", "body": body}


def callouts(prompt: str) -> dict:
    """One insertion plan per requested block (`Block b1` ... in the task)."""
    pieces = re.split(r"^Block (\S+)$", prompt, flags=re.MULTILINE)
    return {"callouts": [{"block": key} | callout(prompt, text) for key, text in zip(pieces[1::2], pieces[2::2], strict=True)]}


def cluster(prompt: str) -> dict:
    """A label from the entries' most common long word."""
    words = re.findall(r"\b[a-z]{6,}\b", " ".join(_entries(prompt)).lower())
    top = max(sorted(set(words)), key=words.count, default="field")
    return {"label": f"{top.capitalize()} Practices"}


def draft(prompt: str) -> dict:
    """A draft whose steps are the entries' first sentences."""
    entries = _entries(prompt) or ["Follow the pattern."]
    label = re.search(r"^Topic label: (.*)$", prompt, re.MULTILINE)
    return {"title": (label.group(1) if label else "Field Practices")[:60],
            "overview": "A procedure distilled from recurring field knowledge. Use it when the situation comes up.",
            "steps": [_first_sentence(e) for e in entries],
            "key_lessons": [_first_sentence(e) for e in entries[:3]]}


def playbook_outline(prompt: str) -> dict:
    """The number of scenarios asked for, along the deal, citing nothing it was not given."""
    count = int(re.search(r"^Scenarios wanted: (\d+)$", prompt, re.MULTILINE).group(1))
    persona = re.search(r"^Target persona: (.*)$", prompt, re.MULTILINE).group(1)
    stages = ["discovery", "demo", "proposal", "negotiation", "closing", "expansion"][:count]
    return {"description": f"A playbook for selling to {persona}, written by the fake model.",
            "scenarios": [{"title": f"{s.capitalize()} meeting with {persona}", "deal_stage": s,
                           "meeting_context": "A meeting in the deal.", "customer_pain_points": ["Slow onboarding."],
                           "competitors": []} for s in stages]}


def content_modules(prompt: str) -> dict:
    """Every module, each citing the first source ids the prompt lists."""
    refs = re.findall(r'<source id="(src-\d+)"', prompt)[:2]
    return {"opening_strategy": "Open with what the fake model read in the sources.",
            "key_messages": ["Fake model message one.", "Fake model message two."],
            "value_propositions": ["Faster onboarding."], "discovery_questions": ["What slows you down today?"],
            "objection_handling": [{"objection": "Fake model objection.", "response": "Fake model response."}],
            "next_steps": ["Book the demo."],
            "sources": {m: refs for m in ("opening_strategy", "key_messages", "value_propositions",
                                          "discovery_questions", "objection_handling", "next_steps")}}


def generic(schema: Mapping[str, Any]) -> Any:
    """A minimal instance of a JSON schema (first enum value, one array item)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: generic(v) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [generic(schema.get("items", {}))]
    return {"string": "text", "number": 0.5, "integer": 1, "boolean": True}.get(kind)


def default_answer(name: str, schema: Mapping[str, Any], prompt: str) -> Any:
    """Our four steps answered sensibly; anything else from its schema."""
    handlers = {"record_classification": classify, "write_callout": callout, "write_callouts": callouts, "name_cluster": cluster,
                "draft_sop": draft, "draft_playbook": playbook_outline, "write_content_modules": content_modules}
    return handlers[name](prompt) if name in handlers else generic(schema)
