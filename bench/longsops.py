"""Long SOPs (~7,000 words) for the cost benchmark: the bench playbook's SOPs, grown to a real playbook's length.

Each SOP is bench.generate's SOP (same topics, same bullets an entry may restate) followed by
a detailed procedure in phases of steps and the sections real playbooks carry (Metrics,
Templates, Glossary, References, Revision History). Entries from bench.generate.entries
match them as they match the short ones.
"""

from __future__ import annotations

import random

from bench import generate
from bench.generate import THEMES, VERBS, _paragraph, _phrase, _sentence, sop_text


def long_sop_text(topic, seed: int, words: int = 7_000) -> str:
    """One SOP of about `words` words."""
    rng = random.Random(f"long:{seed}:{topic.path}")
    vocab = topic.words
    text = sop_text(topic, seed).rstrip("\n") + "\n"
    phase, step = 0, 0
    while len(text.split()) < words - 600:
        if step % 6 == 0:
            phase += 1
            text += f"\n## Detailed Procedure, Phase {phase}: {_phrase(rng, vocab, 2).title()}\n\n{_paragraph(rng, vocab, 2, 3)}\n"
        step += 1
        heading = f"{phase}{chr(96 + (step - 1) % 6 + 1)}. {rng.choice(VERBS).capitalize()} the {_phrase(rng, vocab, 2)}"
        bullets = "\n".join(f"- {_sentence(rng, vocab)}" for _ in range(rng.randint(3, 5)))
        text += f"\n### {heading}\n\n{_paragraph(rng, vocab, 8, 12)}\n\n{bullets}\n\n{_paragraph(rng, vocab, 4, 7)}\n"
    rows = "\n".join(f"| {_phrase(rng, vocab, 2)} | {rng.randint(5, 95)}% | {rng.choice(['weekly', 'monthly'])} |"
                     for _ in range(6))
    glossary = "\n".join(f"- **{w}**: {_sentence(rng, vocab)}" for w in rng.sample(vocab, k=min(8, len(vocab))))
    text += (f"\n## Metrics\n\n| Metric | Target | Cadence |\n|---|---|---|\n{rows}\n\n## Templates\n\n"
             f"{_paragraph(rng, vocab, 4, 6)}\n\n## Glossary\n\n{glossary}\n\n## References\n\n"
             f"- {THEMES[topic.theme][0]} overview\n- {_phrase(rng, vocab, 2).title()} checklist\n\n"
             f"## Revision History\n\n- v1.0: first version.\n- v1.1: {_sentence(rng, vocab)}\n")
    return text


def playbook(m: int, seed: int = 1, words: int = 7_000) -> dict[str, bytes]:
    """A Docusaurus playbook repository with m long SOPs: path → bytes."""
    return generate.playbook(m, seed, text=lambda topic, s: long_sop_text(topic, s, words))
