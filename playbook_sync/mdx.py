"""MDX safety: sanitize generated text for callout bodies, lint whole documents.

Docusaurus compiles every page as MDX, where `<` starts JSX, `{` starts a JavaScript
expression, `import`/`export` at a line start is ESM and `:::` opens or closes an
admonition. Text that comes from calls or from an LLM must never be able to do any
of that, so `mdx_safe` rewrites it into one plain markdown paragraph that still reads as
the caller typed it ("<Too expensive> {price}" shows as exactly that):

* HTML entities are decoded first (so `&lt;script&gt;` is treated as `<script>`, and the
  output, which is itself encoded, decodes back to the same plain text: idempotence);
* HTML comments and `<script>`/`<style>`-like elements are dropped with their content (a
  comment or a script is not something a reader was meant to see); every other `<...>` stays;
* `<`, `>`, `{`, `}`, backticks and backslashes are written as character references
  (`&lt;`, `&gt;`, `&#123;`, `&#125;`, `&#96;`, `&#92;`): MDX decodes them for display
  and never parses them as JSX, expressions, code spans or escapes, and a browser shows
  `<Retainer/>` as text. Runs of 3+ colons or tildes and a leading `import`/`export` are
  encoded the same way, so no admonition, fence or ESM can open;
* markdown links keep only their text unless the target is a plain http(s) URL;
  `javascript:`/`vbscript:`/`data:` schemes are defanged wherever they appear;
* control, zero-width, bidi and private-use characters are removed, all whitespace
  collapses to single spaces, and block syntax at the start (headings, list and quote
  markers, thematic breaks, link definitions) is removed.

`mdx_safe` is idempotent: its output passes through unchanged. `mdx_text` is what a reader
sees of it (for places that are not MDX, such as YAML frontmatter).
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from playbook_sync.textmemo import memoized

_MAX_ROUNDS = 8
_MAX_TARGET = 512
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})  # controls, zero-width/bidi, private, unassigned
# A comment or script-like element is dropped with what it holds; an unclosed one only loses its opener, so
# "don't use <style> tags in emails" keeps its words (what follows is shown as text, never run: _encode).
_COMMENT = re.compile(r"<!--.*?-->|<!--", re.S)
_RAW_ELEMENT = re.compile(r"<(script|style|iframe|object|embed|template|textarea)\b[^<>]*>.*?</\1\s*>"
                          r"|</?(?:script|style|iframe|object|embed|template|textarea)\b[^<>]*>?", re.S | re.I)
_LINK_START = re.compile(r"(!?)\[([^\[\]]*)\]\(")
_SAFE_URL = re.compile(r"https?://[^\s()<>{}\[\]\"'`\\]+")
_SCRIPT_SCHEME = re.compile(r"\b(javascript|vbscript)[\s:]*:", re.I)
_DATA_SCHEME = re.compile(r"\b(data)[\s:]*:(?=\s*[a-z]+/)", re.I)
_LEADING = re.compile(r"^(?:#{1,6}(?=\s|$)|[-*+](?=\s|$)|\d{1,9}[.)](?=\s|$)|[>:\s])+")
_THEMATIC_BREAK = re.compile(r"^([-*_])(?:\s*\1){2,}\s*$")
_LINK_DEFINITION = re.compile(r"^(\[[^\]]*\]):")
_ESM = re.compile(r"^(import|export)\b")
# Characters MDX would read as syntax, as the references it decodes back for display. `&` is
# not among them: the plain text holds no decodable reference (see mdx_safe), so a bare `&` is inert.
_REFERENCES = {"<": "&lt;", ">": "&gt;", "{": "&#123;", "}": "&#125;", "`": "&#96;", "\\": "&#92;"}
_SYNTAX = re.compile(r"[<>{}`\\]|:{3,}|~{3,}")


def mdx_safe(text: str) -> str:
    """Rewrite untrusted text into one MDX-inert markdown paragraph (see module docstring)."""
    return _encode(_plain(text))


def mdx_text(safe: str) -> str:
    """What a reader sees of mdx_safe's output: its character references decoded."""
    return html.unescape(safe)


def _plain(text: str) -> str:
    """The text as it should display: one line, no comment/script, no dangerous link or block syntax."""
    text = "".join(_clean_char(ch) for ch in _decode_entities(text))
    text = unicodedata.normalize("NFC", text)
    # Unwrapping a link glues its label to its neighbours ("<scr[ipt](x)>", "<![](x)--"), which can
    # form a new comment or script element: repeat until nothing changes (each round shrinks the text).
    while (dropped := _drop_and_unlink(text)) != text:
        text = dropped
    text = _LEADING.sub("", " ".join(text.split()))
    if _THEMATIC_BREAK.match(text):
        return ""
    text = _LINK_DEFINITION.sub(r"\1 :", text)
    if "&" in text and html.unescape(text) != text:
        # Entities nested deeper than _MAX_ROUNDS, or glued together by our rewrites: spell the
        # ampersand out, so the output decodes back to exactly this text and stays idempotent.
        text = " ".join(text.replace("&", " and ").split())
    return unicodedata.normalize("NFC", text)  # an unwrapped label can put a combining mark after a letter


def _drop_and_unlink(text: str) -> str:
    text = _RAW_ELEMENT.sub(" ", _COMMENT.sub(" ", text))
    text = _defang(text)  # before links, so a defanged target no longer looks like a URL
    # Labels may hold links ("[[x](a)](b)"): unwrap innermost first; each round drops a "](".
    while (relinked := _links(text)) != text:
        text = relinked
    return _defang(text)  # again: dropping a link can join "javascript" and ":"


def _encode(text: str) -> str:
    """Write MDX syntax characters of plain text as character references (decoded for display)."""
    text = _SYNTAX.sub(lambda m: "".join(_REFERENCES.get(ch) or f"&#{ord(ch)};" for ch in m.group(0)), text)
    return _ESM.sub(lambda m: f"&#{ord(m.group(1)[0])};{m.group(1)[1:]}", text)


def _defang(text: str) -> str:
    """Break dangerous URL schemes: `javascript:` -> `javascript `."""
    return _DATA_SCHEME.sub(r"\1 ", _SCRIPT_SCHEME.sub(r"\1 ", text))


def _decode_entities(text: str) -> str:
    """Decode HTML entities repeatedly, so double-encoding cannot smuggle tags past us."""
    for _ in range(_MAX_ROUNDS):  # bounded: deeper nesting is neutralized at the end of mdx_safe
        if (decoded := html.unescape(text)) == text:
            break
        text = decoded
    return text


def _clean_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if ch in "\t\n\r\f\v" or category.startswith("Z"):
        return " "
    return "" if category in _DROP_CATEGORIES else ch


def _links(text: str) -> str:
    """Replace markdown links/images by their text; keep links only to plain http(s) URLs."""
    out: list[str] = []
    pos = 0
    while match := _LINK_START.search(text, pos):
        end = _closing_paren(text, match.end())
        if end is None:
            out.append(text[pos : match.end()])
            pos = match.end()
            continue
        image, label, target = match.group(1), match.group(2), text[match.end() : end].strip()
        out.append(text[pos : match.start()])
        keep = not image and _SAFE_URL.fullmatch(target) is not None
        out.append(f"[{label}]({target})" if keep else label)
        pos = end + 1
    out.append(text[pos:])
    return "".join(out)


def _closing_paren(text: str, start: int) -> int | None:
    depth = 0
    # Bounded so hostile "[a](((..." stays linear; an unconverted, defanged target is inert anyway.
    for index in range(start, min(len(text), start + _MAX_TARGET)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            if depth == 0:
                return index
            depth -= 1
    return None


# --- document structure -------------------------------------------------------------

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
_ADMONITION_OPEN = re.compile(r"^\s*(:{3,})\s*([A-Za-z][\w-]*)")
_ADMONITION_CLOSE = re.compile(r"^\s*:{3,}\s*$")


@dataclass(frozen=True)
class LineInfo:
    """Where a line sits: `kind` is frontmatter|code|text; the rest is the state after it."""

    kind: str
    in_fence: bool  # a fenced code block is open after this line
    depth: int  # admonitions open after this line
    event: str | None = None  # "open", "close" or "stray" for admonition fences

    @property
    def outside(self) -> bool:
        """True when, after this line, we are neither in a code fence nor in an admonition."""
        return not self.in_fence and self.depth == 0


def frontmatter_length(lines: list[str]) -> int:
    """Number of leading lines that form the YAML frontmatter (0 if there is none)."""
    if not lines or lines[0].strip() != "---":
        return 0
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return index + 1
    return 0


def scan(lines: list[str]) -> list[LineInfo]:
    """Classify each line (frontmatter, fenced code, text) and track admonition depth."""
    head = frontmatter_length(lines)
    infos = [LineInfo("frontmatter", False, 0)] * head
    fence: tuple[str, int] | None = None
    depth = 0
    for line in lines[head:]:
        body = line.rstrip("\r\n")
        match = _FENCE.match(body)
        if fence is not None:
            marker = match.group(1) if match else ""
            if marker[:1] == fence[0] and len(marker) >= fence[1] and not match.group(2).strip():
                fence = None
            infos.append(LineInfo("code", fence is not None, depth))
        elif match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
            fence = (match.group(1)[0], len(match.group(1)))
            infos.append(LineInfo("code", True, depth))
        elif _ADMONITION_OPEN.match(body):
            depth += 1
            infos.append(LineInfo("text", False, depth, "open"))
        elif _ADMONITION_CLOSE.match(body):
            event = "close" if depth else "stray"
            depth = max(depth - 1, 0)
            infos.append(LineInfo("text", False, depth, event))
        else:
            infos.append(LineInfo("text", False, depth))
    return infos


# --- linting ------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_LESS_THAN = re.compile(r"(?<!\\)<(?=\S)")
_BRACE = re.compile(r"(?<!\\)\{")
_DATA_LINK = re.compile(r"\]\(\s*<?\s*data\s*:", re.I)


def find_hazards(text: str) -> list[tuple[int, str]]:
    """(1-based line, message) for every MDX hazard outside frontmatter and fenced code."""
    return [(line, message) for line, message, _ in _hazards(text)]


def coded_hazards(text: str) -> list[tuple[int, str, str]]:
    """(1-based line, code, message) for every MDX hazard; callers decide on the stable code, not the text."""
    return [(line, code, message) for line, message, code in _hazards(text)]


# Hazards that break the page's structure: anything inserted after one would be swallowed.
STRUCTURAL = frozenset({"admonition-stray", "admonition-unclosed", "fence-unclosed"})


def _hazards(text: str) -> list[tuple[int, str, str]]:
    """(line, message, code), sorted by line and message as find_hazards always was (scanned once per text)."""
    return list(memoized("mdx-hazards", text, _scan_hazards))


def _scan_hazards(text: str) -> tuple[tuple[int, str, str], ...]:
    lines = text.splitlines(keepends=True)
    infos = scan(lines)
    hazards: list[tuple[int, str, str]] = []
    open_admonitions: list[tuple[int, str]] = []
    fence_start = 0
    for number, (line, info) in enumerate(zip(lines, infos, strict=True), start=1):
        if info.kind == "code" and (number == 1 or not infos[number - 2].in_fence):
            fence_start = number
        if info.kind != "text":
            continue
        body = line.rstrip("\r\n")
        if info.event == "open":
            open_admonitions.append((number, body.strip()))
        elif info.event == "close":
            open_admonitions.pop()
        elif info.event == "stray":
            hazards.append((number, "closing ':::' without an open admonition", "admonition-stray"))
        hazards.extend((number, message, code) for code, message in _line_hazards(body))
    hazards.extend((number, f"admonition '{opener}' is never closed", "admonition-unclosed")
                   for number, opener in open_admonitions)
    if infos and infos[-1].in_fence:
        hazards.append((fence_start, "code fence is never closed", "fence-unclosed"))
    return tuple(sorted(hazards))


def _line_hazards(body: str) -> list[tuple[str, str]]:
    found = [
        ("mdx-control-character", f"invisible or control character U+{ord(ch):04X}")
        for ch in dict.fromkeys(body)
        if ch != "\t" and (unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"})
    ]
    # MDX does not evaluate `{` or `<` inside code spans; blank them out, keeping positions.
    prose = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), body)
    if _ESM.match(body):
        found.append(("mdx-esm", "import/export at line start is parsed as ESM"))
    if "<!--" in prose:
        found.append(("mdx-html-comment", "HTML comment (not allowed in MDX)"))
    for match in _LESS_THAN.finditer(prose):
        if not prose.startswith("<!--", match.start()):
            found.append(("mdx-jsx", f"'<' starts JSX/HTML: {prose[match.start() : match.start() + 20]!r}"))
    if _BRACE.search(prose):
        found.append(("mdx-expression", "'{' starts an MDX expression"))
    if _SCRIPT_SCHEME.search(prose) or _DATA_LINK.search(prose):
        found.append(("mdx-script-url", "script or data URL"))
    return found
