"""The builder's pydantic models, with the issue's names: Playbook, Scenario, ContentModules.

Bodies sent by people are strict (unknown keys are a 422, not silently dropped) and bounded
(every string and list has a limit, so a body cannot grow a row without end).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from playbook_sync.ingest import storable


class DealStage(StrEnum):
    """Where in the deal a scenario happens, in the order a deal moves through them.

    prospecting: first outreach, no meeting yet; discovery: learn the pains and the buying
    process; demo: show the product against those pains; proposal: scope and price in
    writing; negotiation: terms, procurement, legal; closing: signature and hand-off;
    expansion: an existing customer buying more.
    """

    prospecting = "prospecting"
    discovery = "discovery"
    demo = "demo"
    proposal = "proposal"
    negotiation = "negotiation"
    closing = "closing"
    expansion = "expansion"


class PlaybookStatus(StrEnum):
    draft = "draft"
    published = "published"
    archived = "archived"


# What people type is stored the way ingested knowledge is: control and invisible characters dropped (a NUL
# made PostgreSQL refuse the row with a 500), a lone surrogate refused with a sentence. After the constraints
# in the list, so that it wraps the string schema and they keep their own messages.
_Clean = BeforeValidator(lambda value: storable(value) if isinstance(value, str) else value)
Line = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), _Clean]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), _Clean]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), _Clean]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=8000), _Clean]
Lines = Annotated[list[Line], Field(max_length=50)]
MODULE_NAMES = ("opening_strategy", "key_messages", "value_propositions", "discovery_questions",
                "objection_handling", "next_steps")
ModuleName = Literal["opening_strategy", "key_messages", "value_propositions", "discovery_questions",
                     "objection_handling", "next_steps"]
# What a person's edit is recorded against: the scenario's own fields and each content module.
SCENARIO_FIELDS = ("title", "deal_stage", "meeting_context", "customer_pain_points", "competitors")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectionResponse(_Body):
    objection: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), _Clean]
    response: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), _Clean] = ""


class ContentModules(_Body):
    """What a seller uses in the meeting; every module can be generated or edited on its own."""

    opening_strategy: Text = ""
    key_messages: Lines = []
    value_propositions: Lines = []
    discovery_questions: Lines = []
    objection_handling: Annotated[list[ObjectionResponse], Field(max_length=50)] = []
    next_steps: Lines = []


class ScenarioIn(_Body):
    """A new scenario (POST /api/playbooks/{id}/scenarios)."""

    title: Title
    deal_stage: DealStage = DealStage.discovery
    meeting_context: Text = ""
    customer_pain_points: Lines = []
    competitors: Annotated[list[Short], Field(max_length=50)] = []
    content_modules: ContentModules = ContentModules()


class ScenarioUpdate(_Body):
    """A scenario change: only the fields sent change; `updated_at` (or If-Match) guards against lost updates."""

    title: Title | None = None
    deal_stage: DealStage | None = None
    meeting_context: Text | None = None
    customer_pain_points: Lines | None = None
    competitors: Annotated[list[Short], Field(max_length=50)] | None = None
    content_modules: ContentModules | None = None
    updated_at: datetime | None = None


class Source(BaseModel):
    """Something generation was grounded in: an SOP section, a knowledge entry (later: a report)."""

    type: str
    id: str
    title: str
    text: str = ""


class Scenario(ScenarioIn):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: uuid.UUID
    playbook_id: uuid.UUID
    position: int
    edited: list[str] = []  # fields a person changed since the last generation (generation keeps them)
    sources: dict[str, list[Source]] = {}  # per generated module: what it was grounded in
    created_at: datetime
    updated_at: datetime


class PlaybookIn(_Body):
    """A new playbook (POST /api/playbooks)."""

    title: Title
    description: Text = ""
    target_persona: Short = ""
    industry: Short = ""
    product_line: Short = ""
    status: PlaybookStatus = PlaybookStatus.draft
    is_template: bool = False


class PlaybookUpdate(_Body):
    title: Title | None = None
    description: Text | None = None
    target_persona: Short | None = None
    industry: Short | None = None
    product_line: Short | None = None
    status: PlaybookStatus | None = None
    is_template: bool | None = None
    updated_at: datetime | None = None


class Playbook(PlaybookIn):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: uuid.UUID
    user_id: int
    owner: str = ""
    scenarios: list[Scenario] = []
    published_path: str | None = None
    published_sha: str | None = None
    created_at: datetime
    updated_at: datetime


class GenerateRequest(_Body):
    """POST /api/playbooks/generate: what the playbook is for; the model writes the structure."""

    title: Title
    target_persona: Short = ""
    industry: Short = ""
    product_line: Short = ""
    goals: Text = ""
    scenarios: int = Field(4, ge=3, le=6)


class ScenarioGenerateRequest(_Body):
    """POST .../scenarios/{sid}/generate: all content modules, or the ones named; edited ones only with overwrite."""

    modules: Annotated[list[ModuleName], Field(min_length=1, max_length=6)] | None = None
    overwrite: bool = False


class JobView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    status: str
    progress: int
    message: str
    playbook_id: uuid.UUID | None
    scenario_id: uuid.UUID | None
    result: dict | None
    error: str | None
    sources: list[Source] = []
    cost_usd: float
    created_at: datetime
    updated_at: datetime


# -- what the providers answer (strict schemas in providers/builder_steps.py) --------------------


class ScenarioOutline(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=200)
    deal_stage: DealStage
    meeting_context: str = Field(max_length=2000)
    customer_pain_points: list[str] = Field(max_length=10)
    competitors: list[str] = Field(max_length=10)


class PlaybookOutline(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    description: str = Field(max_length=4000)
    scenarios: list[ScenarioOutline] = Field(min_length=1, max_length=6)


class ModulesDraft(BaseModel):
    """Generated content modules and, per module, the refs of the sources it drew on."""

    modules: ContentModules
    module_sources: dict[str, list[str]] = {}


class OutlineRequest(BaseModel):
    title: str
    target_persona: str = ""
    industry: str = ""
    product_line: str = ""
    goals: str = ""
    scenarios: int = 4
    sources: list[tuple[str, Source]] = []  # (ref in the prompt, source)


class ModulesRequest(BaseModel):
    playbook_title: str
    target_persona: str = ""
    industry: str = ""
    product_line: str = ""
    scenario: ScenarioIn
    modules: list[str] = list(MODULE_NAMES)
    sources: list[tuple[str, Source]] = []
