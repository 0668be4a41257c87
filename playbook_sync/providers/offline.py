"""Deterministic, network-free providers: a lexical hashing embedder and a heuristic LLM."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from playbook_sync import schemas
from playbook_sync.builder.models import ModulesDraft, ModulesRequest, OutlineRequest, PlaybookOutline
from playbook_sync.config import OFFLINE_EMBEDDING_MODEL
from playbook_sync.providers import offline_builder
from playbook_sync.providers.base import ProviderError
from playbook_sync.restatements import restated_callout
from playbook_sync.schemas import Action, CalloutDraft, CalloutRequest, Candidate, ClassifyRequest, Decision, Entry, NewSopRequest, SopDraft

# Letters of any script, so accented words stay whole; straight or curly apostrophes.
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
# Where a clause ends. Also PostgreSQL's (lexicon.pairs), so both sides cut phrases at the same marks.
CLAUSE_MARKS = r"""[.!?;:,()\[\]"\n]+|\s[-–—]+\s"""
_CLAUSE = re.compile(CLAUSE_MARKS)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")

# Function words carry no topic. "sop" is here too: it heads every SOP title, so
# keeping it would give every section a shared baseline with any entry saying "SOP".
# Contractions ("don't", "we're") are dropped by the tokenizer, so they are not listed.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at back be because been
    before being below between both but by can cannot could did do does doing down during each
    even ever every few for from further get gets go going got had has have having he her here
    hers herself him himself his how however i if in into is it its itself just know like lot
    lots made make may me might more most much must my myself need needs no nor not now of off
    often on once one only or other ought our ours ourselves out over own per quite rather
    really said same say she should so some still such take than that the their theirs them
    themselves then there these they thing things this those though through to told too took
    under until up upon us use used using very via want was way we well went were what when
    where whether which while who whom why will with within without would yes yet you your
    yours yourself yourselves sop
    """.split()
)

# Bigrams sharpen near-verbatim matches without swamping paraphrases.
_BIGRAM_WEIGHT = 0.5


def stem(word: str) -> str:
    """Strip common English suffixes so `referrals`, `referred` and `referral` meet."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("ing") and len(word) > 5:
        word = _undouble(word[:-3])
    elif word.endswith("ed") and len(word) > 4:
        word = _undouble(word[:-2])
    elif word.endswith(("sses", "shes", "ches", "xes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    if word.endswith("ly") and len(word) > 5:
        word = word[:-2]
    # Dropping a final "e" makes close/closing/closed and price/pricing one stem.
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def _undouble(word: str) -> str:
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Stemmed content words in order: lowercase, no stopwords, no bare numbers."""
    return [word for segment in segments(text) for word in segment]


def segments(text: str) -> list[list[str]]:
    """Content words per clause, so bigrams never span a sentence or line break."""
    out: list[list[str]] = []
    for clause in _CLAUSE.split(text.lower()):
        words = [stem(t) for t in map(_base, _WORD.findall(clause)) if t and t not in STOPWORDS]
        if words:
            out.append(words)
    return out


def _base(token: str) -> str:
    """The word a token stands for, or "" for numbers and contractions."""
    # "prospect's" -> prospect, "l'équipe" -> équipe, "don't"/"we're" -> dropped.
    head, _, tail = token.replace("’", "'").partition("'")
    token = head if tail == "s" else tail if len(tail) > 2 else "" if tail else head
    return "" if token.isdigit() or len(token) < 2 else token


def phrase_pairs(text: str) -> list[str]:
    """Adjacent content-word pairs (bigrams) within each clause of a text."""
    return [f"{a} {b}" for seg in segments(text) for a, b in zip(seg, seg[1:])]


@lru_cache(maxsize=65536)
def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    # blake2b, not hash(): Python salts str hashes per process, and vectors must be
    # identical across workers and runs because they are cached in the database.
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    # The sign bit comes from the high end so it is independent of the bucket index;
    # signed hashing makes collisions cancel on average instead of inflating similarity.
    return value % dimensions, 1.0 if value >> 63 else -1.0


class OfflineEmbedder:
    """Lexical embedder: stemmed unigrams and bigrams, sublinear tf, signed feature hashing."""

    model: str = OFFLINE_EMBEDDING_MODEL

    def __init__(self, dimensions: int = 1536, max_batch: int = 2048) -> None:
        if dimensions < 8 or max_batch < 1:
            raise ProviderError("dimensions must be >= 8 and max_batch >= 1")
        self.dimensions = dimensions
        self.max_batch = max_batch
        self.calls = 0  # embed() requests, so tests can assert batching and caching
        self.inputs = 0  # texts embedded over all requests
        self._counting = threading.Lock()  # a run's start embeds SOPs and entries on two threads at once

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed up to max_batch texts in one request; every vector has unit L2 norm."""
        if isinstance(texts, str) or any(not isinstance(text, str) for text in texts):
            raise ProviderError("embed() takes a sequence of str, not one string")
        if len(texts) > self.max_batch:
            raise ProviderError(f"batch of {len(texts)} exceeds max_batch={self.max_batch}")
        with self._counting:
            self.calls += 1
            self.inputs += len(texts)
        matrix = np.zeros((len(texts), self.dimensions), dtype=np.float64)
        for row, text in enumerate(texts):
            self._fill(matrix[row], text)
        return matrix.tolist()

    def _fill(self, vector: np.ndarray, text: str) -> None:
        weights = self.features(text)
        if not weights:
            # A text with no content words still gets a unit vector of its own, so
            # cosine similarity stays defined downstream (pgvector returns NaN on zeros).
            weights = {"\x00raw:" + text.strip().lower(): 1.0}
        for feature, weight in weights.items():
            index, sign = _bucket(feature, self.dimensions)
            vector[index] += sign * weight
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:  # every feature cancelled out in collisions: vanishingly rare
            vector[0], norm = 1.0, 1.0
        vector /= norm

    @staticmethod
    def features(text: str) -> dict[str, float]:
        """Feature weights: 1 + ln(tf) so a repeated word cannot dominate a section."""
        weights: dict[str, float] = {}
        for feature, count in Counter(terms(text)).items():
            weights[feature] = 1.0 + math.log(count)
        for feature, count in Counter(phrase_pairs(text)).items():
            weights[feature] = _BIGRAM_WEIGHT * (1.0 + math.log(count))
        return weights


def sentences(text: str) -> list[str]:
    """Split prose into sentences, each ending with punctuation."""
    parts = [p.strip() for p in _SENTENCE_END.split(" ".join(text.split())) if p.strip()]
    return [p if p[-1] in ".!?" else p + "." for p in parts]


# Thresholds of the heuristic classifier, as fractions of the entry's distinct terms.
REDUNDANT_CONTAINMENT = 0.8  # nearly every content word is already in the SOP ...
REDUNDANT_BIGRAMS = 0.5  # ... and so are most word pairs, i.e. the phrasing too
WEAK_ENRICH_CONTAINMENT = 0.5  # a weak-band match must still share half its vocabulary

# Leading hedges removed when turning an observation into an instruction.
_HEDGES = re.compile(
    r"^(?:(?:we|i) (?:found|learned|noticed|saw|realized) (?:that )?|"
    r"(?:you|we) (?:should|need to|have to|must) |make sure (?:to |you )?|"
    r"(?:always|try to|remember to|it helps to|the key is to) )+",
    re.IGNORECASE,
)
_HOW_QUESTION = re.compile(r"^(?:how|what) (?:do|should|can) (?:we|i|you) (.+)\?$", re.IGNORECASE)
_YES_NO_QUESTION = re.compile(r"^(?:should|do|can) (?:we|i|you) (.+)\?$", re.IGNORECASE)
# Sentences opening with one of these already read as a step.
_VERBS = frozenset(
    """add agree ask avoid book build call check choose collect confirm create cut decide define
    document end follow give include interview invite keep lead limit list map measure offer open
    pay pick plan post prepare present price put qualify reach record reframe replace review run
    schedule send set share show start state stop test track use write""".split()
)
_FALLBACK_PREFIX = {"outcome": "Replicate this result: ", "question": "Resolve this question: "}


class OfflineLLM:
    """Heuristic stand-in for the LLM: term containment decides, templates write."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()  # per-method call counts for tests

    def classify(self, request: ClassifyRequest) -> list[Decision]:
        """Decide enrich|redundant|tangential for every candidate by term containment."""
        self.calls["classify"] += 1
        if not request.candidates:
            raise ProviderError("classify() needs at least one candidate")
        decisions = [self._decide(request.entry.content, c) for c in request.candidates]
        covered = next((d for d in decisions if d.action == Action.redundant), None)
        if covered is None:
            # One home per entry: candidates come best first (fused ranking). A heuristic cannot argue
            # against that order, so only the first may be enriched; when it is not on topic, a lower
            # one that merely shares words is no better a home (bench/quality: precision 0.84 → 0.89).
            home = decisions[0] if decisions[0].action == Action.enrich else None
            note = {"action": Action.tangential, "rationale": f"The best match is {request.candidates[0].sop_path}; "
                                                              "a heuristic does not overrule the ranking."}
            return [d.model_copy(update=note) if d.action == Action.enrich and d is not home else d for d in decisions]
        # Knowledge the playbook already holds is not copied into a second SOP: a
        # reviewer would see the same advice twice.
        note = f"Already covered by {covered.sop_path}; adding it here would duplicate it."
        demote = {"action": Action.tangential, "rationale": note}
        return [d.model_copy(update=demote) if d.action == Action.enrich else d for d in decisions]

    def _decide(self, content: str, candidate: Candidate) -> Decision:
        sop = f"{candidate.title}\n{candidate.section}\n{candidate.sop_text}"
        unigram = _containment(set(terms(content)), set(terms(sop)))
        pairs = _containment(set(phrase_pairs(content)), set(phrase_pairs(sop)))
        shared = f"{unigram:.0%} of its key terms"
        on_topic = candidate.band == "strong" or (
            candidate.band == "weak" and unigram >= WEAK_ENRICH_CONTAINMENT
        )
        if unigram >= REDUNDANT_CONTAINMENT and pairs >= REDUNDANT_BIGRAMS:
            action, confidence = Action.redundant, (unigram + pairs) / 2
            rationale = f"Restates this SOP: {shared} and {pairs:.0%} of its phrases are there."
        # Judged only where the entry belongs: beside an SOP it is not about, any short callout is "nearer"
        # than paragraphs that share nothing with it either.
        elif on_topic and (restated := restated_callout(content, candidate.sop_text, OfflineEmbedder.features)):
            action, confidence = Action.redundant, restated[1]
            rationale = (f"Says again what a callout here says ({restated[1]:.2f} similar, its nearest section "
                         f"{restated[2]:.2f}): {restated[0][:120]}")
        elif on_topic:
            action = Action.enrich
            confidence = 0.5 * candidate.similarity + 0.5 * unigram
            rationale = f"On topic ({candidate.band} match, {shared} shared) and adds new detail."
        else:
            action, confidence = Action.tangential, 1.0 - unigram
            rationale = f"Only {shared} appear in this SOP, so it shares words but not the topic."
        confidence = round(max(0.0, min(1.0, confidence)), 3)
        section = candidate.section or None
        return Decision(sop_path=candidate.sop_path, action=action, section=section,
                        rationale=rationale, confidence=confidence)

    def write_callout(self, request: CalloutRequest) -> CalloutDraft:
        """Merge the entries' lead sentences: 1-3 sentences, about 400 characters at most."""
        self.calls["write_callout"] += 1
        if not request.entries:
            raise ProviderError("write_callout() needs at least one entry")
        chosen: list[str] = []
        seen: list[set[str]] = []
        for entry in request.entries:
            lead = (sentences(entry.content) or [entry.content.strip()])[0]
            words = set(terms(lead))
            # Two calls saying the same thing merge into one sentence, not two.
            duplicate = any(_jaccard(words, other) >= 0.6 for other in seen)
            if duplicate or (chosen and len(" ".join([*chosen, lead])) > 400):
                continue
            chosen.append(lead)
            seen.append(words)
            if len(chosen) == 3:
                break
        body = " ".join(chosen)
        if len(body) > 400:  # a single very long lead sentence: cut at a word boundary
            body = body[:397].rsplit(" ", 1)[0].rstrip(",;:") + "..."
        return CalloutDraft(body=body)

    def write_callouts(self, request: schemas.SopEditRequest) -> dict[str, CalloutDraft]:
        """All of an SOP's blocks in one call: each block merged as write_callout merges it."""
        self.calls["write_callouts"] += 1
        return {b.key: self.write_callout(CalloutRequest(sop_path=request.sop_path, sop_title=request.sop_title,
                                                         section=b.section, kind=b.kind, entries=b.entries))
                for b in request.blocks}

    def name_cluster(self, entries: Sequence[Entry]) -> str:
        """A 2-3 word title-case label from the cluster's shared tags, else its common words."""
        self.calls["name_cluster"] += 1
        if not entries:
            raise ProviderError("name_cluster() needs at least one entry")
        text = "\n".join(entry.content for entry in entries)
        surface, order = _surface_forms(text), terms(text)
        tags = Counter(t.strip().lower() for e in entries for t in set(e.tags) if t.strip())
        shared = [tag for tag, count in _ranked(tags) if count >= 2][:2]
        if shared:
            words = " ".join(shared).replace("-", " ").replace("_", " ").split()[:3]
            # Word order follows the entries' own phrasing ("referral partnerships", not
            # "partnerships referrals"); modifiers take their usual spelling there.
            words.sort(key=lambda w: order.index(stem(w)) if stem(w) in order else len(order))
            words[:-1] = [surface.get(stem(w), w) for w in words[:-1]]
            return _title(words)
        pair_df = Counter(p for e in entries for p in set(phrase_pairs(e.content)))
        top_pair = _ranked(pair_df)[0] if pair_df else ("", 0)
        if top_pair[1] >= 2:
            return _title([surface.get(w, w) for w in top_pair[0].split()])
        doc_freq = Counter(w for e in entries for w in set(terms(e.content)) if len(w) > 3)
        # A word only one entry uses says nothing about the cluster as a whole.
        top = [surface.get(w, w) for w, n in _ranked(doc_freq)[:2] if n >= 2]
        return _title(top) if top else "Field Notes"

    def draft_sop(self, request: NewSopRequest) -> SopDraft:
        """A new-SOP draft: one step per entry, lessons from the entries' other sentences."""
        self.calls["draft_sop"] += 1
        if not request.entries:
            raise ProviderError("draft_sop() needs at least one entry")
        label = " ".join(request.cluster_label.split()) or self.name_cluster(request.entries)
        title = label[:120] if len(label) >= 3 else f"{label} Playbook"
        sources = {e.source_ref for e in request.entries if e.source_ref}
        steps, lessons = [], []
        for entry in request.entries:
            step, used = _as_step(entry)
            steps.append(step)
            lessons.extend(s for s in sentences(entry.content) if s != used and s[-1] != "?")
        statements = [s for e in request.entries for s in sentences(e.content) if s[-1] != "?"]
        overview = " ".join([
            f"How we approach {label.lower()}, distilled from {len(request.entries)} entries "
            f"across {max(1, len(sources))} calls and reports.", *statements[:1]
        ])
        lessons = _dedupe(lessons or statements or steps)[:5]
        return SopDraft(title=title, overview=overview, steps=_dedupe(steps), key_lessons=lessons)

    def generate_outline(self, request: OutlineRequest) -> PlaybookOutline:
        """The Playbook Builder's structure: 3-6 scenarios (providers/offline_builder.py)."""
        self.calls["generate_outline"] += 1
        return offline_builder.outline(request)

    def generate_modules(self, request: ModulesRequest) -> ModulesDraft:
        """One scenario's content modules from its sources (providers/offline_builder.py)."""
        self.calls["generate_modules"] += 1
        return offline_builder.modules(request)


def containment(part: str, whole: str) -> float:
    """Share of the distinct content words of `part` that also occur in `whole`."""
    return _containment(set(terms(part)), set(terms(whole)))


def _containment(part: set[str], whole: set[str]) -> float:
    return len(part & whole) / len(part) if part else 0.0


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    # Ties broken alphabetically: most_common() keeps insertion order, which would
    # make labels depend on the order entries arrive in.
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _surface_forms(text: str) -> dict[str, str]:
    """Map each stem to its most frequent spelling, so labels read as words, not stems."""
    spellings: dict[str, Counter[str]] = {}
    for token in map(_base, _WORD.findall(text.lower())):
        if token and token not in STOPWORDS:
            spellings.setdefault(stem(token), Counter())[token] += 1
    return {s: _ranked(c)[0][0] for s, c in spellings.items()}


def _title(words: Sequence[str]) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in words)


def _as_step(entry: Entry) -> tuple[str, str]:
    """An instruction drawn from an entry, and the sentence it came from."""
    found = sentences(entry.content) or [entry.content.strip()]
    for sentence in found:
        stripped = _HEDGES.sub("", sentence).strip()
        if stripped.split(" ", 1)[0].lower() in _VERBS:
            return stripped[:1].upper() + stripped[1:], sentence
    lead = found[0]
    if match := _HOW_QUESTION.match(lead):
        return f"Decide how to {match.group(1)}.", lead
    if match := _YES_NO_QUESTION.match(lead):
        return f"Decide whether to {match.group(1)}.", lead
    first = lead.split(" ", 1)[0]
    # Lower-case the opening word so it reads on after the prefix, unless it is a
    # name like "LinkedIn" or "I".
    if first[1:2].islower() and first[1:] == first[1:].lower():
        lead = lead[:1].lower() + lead[1:]
    return _FALLBACK_PREFIX.get(entry.category.value, "Apply this lesson: ") + lead, found[0]


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))
