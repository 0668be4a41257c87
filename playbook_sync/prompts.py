"""Prompt templates from playbook_sync/prompt_templates/: one file per step, checked when loaded, not when called.

A prompt file is split into parts by `<!-- part: NAME -->` lines. The stable parts come
first (`system`: instructions and rubric; `sop`: one SOP's text) so providers can mark
them cacheable; `task` holds what changes per call. Variables are written `{{name}}`.
Loading checks each part's variables against the ones the code supplies, both ways, so
a prompt edit that drops or misspells a variable fails at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from playbook_sync.providers.base import ProviderError

_PART = re.compile(r"^<!-- part: ([a-z_]+) -->[ \t]*\n", re.MULTILINE)
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_STRAY = re.compile(r"\{\{|\}\}")

# The variables the code supplies, per prompt and part; the files must use exactly these.
SPECS: dict[str, dict[str, frozenset[str]]] = {
    "classify_entry": {
        "system": frozenset(),
        "sop": frozenset({"path", "title", "sop_text"}),
        "task": frozenset({"category", "source", "tags", "content", "context", "candidates", "feedback"}),
    },
    "generate_edit": {
        "system": frozenset(),
        "sop": frozenset({"path", "title", "outline", "excerpts"}),
        "task": frozenset({"blocks", "lessons", "feedback"}),
    },
    "name_cluster": {"system": frozenset(), "task": frozenset({"entries", "feedback"})},
    "draft_sop": {"system": frozenset(), "task": frozenset({"module", "label", "entries", "feedback"})},
    # The Playbook Builder (builder/, providers/builder_steps.py).
    "build_playbook": {"system": frozenset(), "sources": frozenset({"sources"}),
                       "task": frozenset({"title", "persona", "industry", "product_line", "goals", "count", "feedback"})},
    "build_modules": {"system": frozenset(), "sources": frozenset({"sources"}),
                      "task": frozenset({"playbook", "persona", "industry", "product_line", "scenario", "modules",
                                         "feedback"})},
    "extract_lessons": {"system": frozenset(), "task": frozenset({"sop", "changes", "feedback"})},  # issue 14 (lessons.py)
}


class PromptError(ProviderError):
    """A prompt file is missing, malformed, or its variables do not match the code."""


@dataclass(frozen=True)
class Part:
    """One part of a prompt: text with `{{variables}}`."""

    text: str
    variables: frozenset[str]

    def render(self, values: Mapping[str, object]) -> str:
        """Substitute every variable in one pass (values are never re-expanded)."""
        given = set(values)
        if given != self.variables:
            missing, extra = sorted(self.variables - given), sorted(given - self.variables)
            raise PromptError(f"prompt part needs {sorted(self.variables)}; missing {missing}, unexpected {extra}")
        return _VARIABLE.sub(lambda m: str(values[m.group(1)]), self.text)


@dataclass(frozen=True)
class Prompt:
    """A loaded, checked prompt."""

    name: str
    path: Path
    parts: Mapping[str, Part]

    def render(self, part: str, **values: object) -> str:
        """One part with its variables filled in."""
        return self.parts[part].render(values)


def default_dir() -> Path:
    """The prompt files shipped inside the package (package data, so an installed wheel has them)."""
    return Path(__file__).resolve().parent / "prompt_templates"


def parse(name: str, text: str, path: Path) -> Prompt:
    """Split a prompt file into parts and check them against SPECS[name]."""
    if name not in SPECS:
        raise PromptError(f"unknown prompt {name!r}; known: {sorted(SPECS)}")
    spec = SPECS[name]
    pieces = _PART.split(text)
    if pieces[0].strip():
        raise PromptError(f"{path}:1: text before the first '<!-- part: NAME -->' line")
    parts: dict[str, Part] = {}
    for part, body in zip(pieces[1::2], pieces[2::2], strict=True):
        line = text[: text.index(f"<!-- part: {part} -->")].count("\n") + 1
        if part in parts:
            raise PromptError(f"{path}:{line}: part {part!r} appears twice")
        if part not in spec:
            raise PromptError(f"{path}:{line}: unexpected part {part!r}; {name} has {list(spec)}")
        used = frozenset(_VARIABLE.findall(body))
        if used != spec[part]:
            missing, unknown = sorted(spec[part] - used), sorted(used - spec[part])
            raise PromptError(f"{path}:{line}: part {part!r} must use exactly the variables {sorted(spec[part])};"
                              f" missing {missing}, unknown {unknown}")
        if _STRAY.search(_VARIABLE.sub("", body)):
            raise PromptError(f"{path}:{line}: part {part!r} has a malformed '{{{{...}}}}' variable")
        parts[part] = Part(body.strip("\n"), used)
    absent = [p for p in spec if p not in parts]
    if absent:
        raise PromptError(f"{path}: missing parts {absent}")
    return Prompt(name, path, parts)


def load(name: str, directory: Path | None = None) -> Prompt:
    """Load and check one prompt file (`<directory>/<name>.md`)."""
    path = (directory or default_dir()) / f"{name}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"cannot read prompt {path}: {exc.strerror}; set PLAYBOOK_SYNC_PROMPTS_DIR") from None
    return parse(name, text, path)


def load_all(directory: Path | None = None) -> dict[str, Prompt]:
    """Every step's prompt, checked; the providers call this when they are built."""
    return {name: load(name, directory) for name in SPECS}
