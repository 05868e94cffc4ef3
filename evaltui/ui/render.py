"""Cases as Rich renderables: chat turns by role, folded tool calls, markdown, word diffs.

Case text is untrusted. Every string from a case goes through `literal`
(evaltui.text's, the one the command line prints through too), which shows
control characters (terminal escape sequences among them) as visible `\\x1b`
codes and bidi controls as `\\u202e`, and is put on screen as a Rich `Text`
or `Markdown` built from plain text, so `[bold]` is shown, never interpreted.
The markdown shows every character of the text but its syntax: HTML,
comments, links, images, entities and link definitions are shown as the text
they are. `raw` shows the exact characters, invisible ones marked.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar

from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markdown import CodeBlock, Markdown, MarkdownElement, TableElement
from rich.measure import Measurement
from rich.padding import Padding
from rich.syntax import Syntax
from rich.text import Text

from evaltui.models import Case, Message
from evaltui.store import Store
from evaltui.text import literal as literal

FOLD_LINES = 24
"""A turn longer than this is folded to its first lines until expanded."""
FOLD_KEEP = 12
SYSTEM_KEEP = 3
SYSTEM_CHARS = 240
"""System prompts are folded to a few lines or characters: raters read the conversation first."""

_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
_INVISIBLE_CHARS = (
    # Format characters (Unicode category Cf: zero-width, bidi, soft hyphen, tags),
    # line and paragraph separators, variation selectors, and the fillers that draw nothing.
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    "\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164"
    "\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARS}]")
_RAW = re.compile(f"[{_CONTROLS}{_INVISIBLE_CHARS}]")
_IN_WORD = "\u200c\u200d\ufe0e\ufe0f"
"""Joiners and emoji presentation selectors, ordinary between non-ASCII letters or emoji."""
MARK_STYLE = "bold black on yellow"
"""How `raw` shows a control or invisible character's code."""
_ROLE_STYLE = {
    "system": "bold magenta",
    "developer": "bold magenta",
    "user": "bold cyan",
    "assistant": "bold green",
    "tool": "bold yellow",
    "function": "bold yellow",
}


def _code(char: str) -> str:
    point = ord(char)
    return f"\\x{point:02x}" if point < 0xA0 else f"<U+{point:04X}>"


def raw(text: str) -> Text:
    r"""The exact characters of `text`: control and invisible characters as marked codes.

    >>> raw("pa\u200bss\x1b[2J").plain
    'pa<U+200B>ss\\x1b[2J'
    """
    shown = Text()
    start = 0
    for found in _RAW.finditer(text):
        shown.append(text[start : found.start()])
        shown.append(_code(found.group()), style=MARK_STYLE)
        start = found.end()
    shown.append(text[start:])
    return shown


def _ordinary(text: str, at: int) -> bool:
    """Whether the joiner or selector at `at` joins non-ASCII letters or emoji (as in 👩‍💻)."""
    char = text[at]
    if char not in _IN_WORD:
        return False
    before = text[at - 1] if at else ""
    if char in "\u200c\u200d" and before in ("\ufe0e", "\ufe0f") and at > 1:
        before = text[at - 2]  # an emoji's presentation selector, then the joiner
    if not before or before.isascii() or _INVISIBLE.match(before):
        return False
    if char in "\ufe0e\ufe0f":
        return True
    after = text[at + 1 : at + 2]
    return bool(after) and not after.isascii() and not _INVISIBLE.match(after)


def invisible(text: str) -> list[str]:
    """The characters of `text` that draw nothing, but joiners inside non-ASCII words and emoji.

    >>> invisible("pass\u200b, \u202eevil, 👩\u200d💻")
    ['\u200b', '\u202e']
    """
    if text.isascii():
        return []
    return [m.group() for m in _INVISIBLE.finditer(text) if not _ordinary(text, m.start())]


def _fold(text: str, expanded: bool, keep: int = FOLD_KEEP, chars: int = 0) -> tuple[str, str]:
    """The text to show, and what was folded away ('' when nothing was)."""
    if expanded:
        return text, ""
    lines = text.split("\n")
    limit = FOLD_LINES if keep == FOLD_KEEP else keep
    shown = "\n".join(lines[:keep]) if len(lines) > limit else text
    if chars and len(shown) > chars:
        shown = shown[:chars].rstrip() + "…"
    if shown == text:
        return text, ""
    if not chars:
        more = len(lines) - keep
        return shown, f"{more} more line{'s' if more != 1 else ''}"
    return shown, f"{len(text) - len(shown) + 1} more characters"


def _parser() -> MarkdownIt:
    # Rich's own parser reads HTML and comments as HTML and then draws nothing for them.
    # Off too: what draws less than its text (a link's title, an image's address, a
    # link definition) or other characters than its text (entities, %-escapes in autolinks).
    parser = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])
    return parser.disable(
        ["html_block", "html_inline", "reference", "link", "image", "autolink", "entity"]
    )


_MARKDOWN = _parser()


class _FencedCode(CodeBlock):
    """A code block under its fence's info string (Rich draws the code only)."""

    @classmethod
    def create(cls, markdown: Markdown, token: Token) -> CodeBlock:
        block = super().create(markdown, token)
        assert isinstance(block, _FencedCode)
        block.info = (token.info or "").strip()
        return block

    info = ""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.info:
            yield Text(self.info, style="dim italic")
        yield from super().__rich_console__(console, options)


class _Table(TableElement):
    """A table that shows every cell whole: Rich cuts long words off and, when the columns
    do not fit, draws some at no width at all; then each row is a line of cells instead."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = [self.header.row] if self.header is not None and self.header.row else []
        rows += self.body.rows if self.body is not None else []
        cells = [[cell.content for cell in row.cells] for row in rows]
        widths: dict[int, int] = {}
        for row in cells:
            for i, cell in enumerate(row):
                widths[i] = max(widths.get(i, 0), Measurement.get(console, options, cell).minimum)
        if sum(widths.values()) + 2 * len(widths) + 1 <= options.max_width:
            for table in super().__rich_console__(console, options):
                for column in getattr(table, "columns", ()):
                    column.overflow = "fold"
                yield table
            return
        for n, row in enumerate(cells):
            line = Text(" │ ", style="markdown.table.border").join(row)
            if n == 0 and self.header is not None:
                line.stylize("markdown.table.header")
            yield line


def _hard_breaks(text: str) -> str:
    # Markdown joins single newlines; keep the writer's line breaks outside code fences.
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append(line)
        else:
            out.append(line if fenced or not line.strip() else line + "  ")
    return "\n".join(out)


_DRAWN = frozenset(
    f"{name}_{end}"
    for name in ("paragraph", "heading", "blockquote", "bullet_list", "ordered_list", "list_item",
                 "table", "thead", "tbody", "tr", "th", "td", "em", "strong", "s")
    for end in ("open", "close")
) | {"inline", "text", "softbreak", "hardbreak", "code_inline", "fence", "code_block", "hr"}  # fmt: skip
"""The tokens Rich draws with all their text; any other token shows the text plainly."""
_NESTS = {"blockquote_open": 1, "list_item_open": 1, "blockquote_close": -1, "list_item_close": -1}
NEST_WIDTH = 4
"""Columns a quote or list level takes; Rich draws nothing where they leave none."""
_WORD = re.compile(r"[^\W_]+")


def _words(tokens: list[Token]) -> list[str]:
    """The words the tokens hold (and so Rich draws), in order."""
    words: list[str] = []
    for token in tokens:
        if token.type in ("list_item_open", "fence"):
            words += _WORD.findall(token.info)  # an ordered item's number, a fence's info
        if token.children:
            words += _words(token.children)
        elif token.type in ("text", "code_inline", "fence", "code_block"):
            words += _WORD.findall(token.content)
    return words


def _draws_every_word(tokens: list[Token], markup: str) -> bool:
    """Whether Rich draws each token, and the tokens hold every word of the markup."""
    drawn = all(
        t.type in _DRAWN and all(c.type in _DRAWN for c in t.children or ()) for t in tokens
    )
    return drawn and _words(tokens) == _WORD.findall(markup)


def _depth(tokens: list[Token]) -> int:
    depth = deepest = 0
    for token in tokens:
        depth += _NESTS.get(token.type, 0)
        deepest = max(deepest, depth)
    return deepest


class CaseMarkdown(Markdown):
    """Rich's markdown, drawing every character of the text but the markdown syntax itself.

    Where markdown would leave any of the text out (the cells past a table's header, what
    lies deeper than markdown-it's nesting limit, a token Rich does not draw, quotes nested
    deeper than the width allows), the whole text is shown plainly instead.
    """

    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements,
        "fence": _FencedCode,
        "table_open": _Table,
    }

    def __init__(self, text: str) -> None:
        super().__init__("", code_theme="monokai", hyperlinks=False)
        self.text = text
        self.markup = _hard_breaks(text)
        self.parsed = _MARKDOWN.parse(self.markup)
        self.depth = _depth(self.parsed)
        self.whole = _draws_every_word(self.parsed, self.markup)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.whole or (self.depth + 2) * NEST_WIDTH > options.max_width:
            yield Text(self.text)
            return
        yield from super().__rich_console__(console, options)


def body(
    text: str,
    *,
    expanded: bool = False,
    markdown: bool = True,
    keep: int = FOLD_KEEP,
    chars: int = 0,
) -> RenderableType:
    """One block of case text: markdown (code highlighted) or plain, folded when long."""
    shown, folded = _fold(literal(text), expanded, keep, chars)
    block: RenderableType = CaseMarkdown(shown) if markdown else Text(shown)
    if not folded:
        return block
    note = Text(f"… {folded} (e to expand)", style="italic dim")
    return Group(block, note)


def _pretty_json(raw: str) -> RenderableType:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return Text(literal(raw or ""))
    return Syntax(literal(json.dumps(value, indent=2, ensure_ascii=False)), "json", word_wrap=True)


def _one_line(text: str, width: int = 70) -> str:
    flat = " ".join(literal(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def message(turn: Message, *, expanded: bool) -> RenderableType:
    """One chat turn: its role, its text, and its tool calls (folded unless expanded)."""
    parts: list[RenderableType] = []
    title = Text(turn.role.upper(), style=_ROLE_STYLE.get(turn.role, "bold"))
    if turn.name:
        title.append(f" ({literal(turn.name)})", style="dim")
    if turn.role == "tool":
        title.append(f"  result {literal(turn.tool_call_id or '')}", style="dim")
    parts.append(title)
    if turn.content:
        if turn.role == "tool" and not expanded:
            parts.append(Padding(Text(f"▸ {_one_line(turn.content)}", style="dim"), (0, 0, 0, 2)))
        elif turn.role == "tool":
            parts.append(Padding(_pretty_json(turn.content), (0, 0, 0, 2)))
        else:
            if turn.role in ("system", "developer"):
                shown = body(turn.content, expanded=expanded, keep=SYSTEM_KEEP, chars=SYSTEM_CHARS)
            else:
                shown = body(turn.content, expanded=expanded)
            parts.append(Padding(shown, (0, 0, 0, 2)))
    for call in turn.tool_calls or ():
        name = literal(call.function.name)
        if expanded:
            parts.append(Padding(Text(f"▾ call {name}", style="yellow"), (0, 0, 0, 2)))
            parts.append(Padding(_pretty_json(call.function.arguments), (0, 0, 0, 4)))
        else:
            summary = f"▸ call {name}({_one_line(call.function.arguments, 50)})"
            parts.append(Padding(Text(summary, style="yellow"), (0, 0, 0, 2)))
    return Group(*parts)


def case_input(case: Case, *, expanded: bool) -> RenderableType:
    """The input of a case: its transcript by role, or its text."""
    if case.messages is not None:
        return Group(*(Group(message(m, expanded=expanded), Text("")) for m in case.messages))
    return Group(
        Text("INPUT", style="bold cyan"),
        Padding(body(case.input or "", expanded=expanded), (0, 0, 0, 2)),
    )


def output_block(title: str, text: str, *, expanded: bool) -> RenderableType:
    """An output under judgement, under its title."""
    return Group(
        Text(title, style="bold reverse green"),
        Padding(body(text, expanded=expanded), (0, 0, 0, 1)),
    )


def case_view(case: Case, *, pairwise: bool) -> list[RenderableType]:
    """A case folded for a dialog: its id, the input, and the output (or A and B)."""
    parts: list[RenderableType] = [Text(f"case {literal(case.id)}", style="bold")]
    note = invisible_note(case_texts(case, hidden=set(case.metadata)), key=None)
    if note is not None:
        parts.append(note)
    parts.append(case_input(case, expanded=False))
    if pairwise:
        parts += [
            output_block(" A ", case.output_a or "", expanded=False),
            output_block(" B ", case.output_b or "", expanded=False),
        ]
    else:
        parts.append(output_block(" OUTPUT ", case.output or "", expanded=False))
    return parts


def word_diff(left: str, right: str) -> tuple[Text, Text]:
    """Both texts with the words only one of them has highlighted.

    >>> a, b = word_diff("the cat sat", "the dog sat")
    >>> [s.style for s in a.spans], a.plain
    (['bold red reverse'], 'the cat sat')
    """
    a_words = re.findall(r"\S+|\s+", literal(left))
    b_words = re.findall(r"\S+|\s+", literal(right))
    a_text, b_text = Text(), Text()
    matcher = difflib.SequenceMatcher(a=a_words, b=b_words, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        a_chunk, b_chunk = "".join(a_words[i1:i2]), "".join(b_words[j1:j2])
        if op == "equal":
            a_text.append(a_chunk)
            b_text.append(b_chunk)
        else:
            a_text.append(a_chunk, style="bold red reverse")
            b_text.append(b_chunk, style="bold green reverse")
    return a_text, b_text


def metadata_line(metadata: dict[str, Any], hidden: set[str]) -> Text:
    """`key=value` pairs for the status line, leaving out `hidden` keys."""
    shown = [f"{literal(str(k))}={_one_line(json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v, 30)}"
             for k, v in metadata.items() if k not in hidden]  # fmt: skip
    return Text("  ".join(shown), style="dim")


_CONNECTION_LOOKS = {
    "connected": ("●", "green"),
    "reconnecting": ("↻ reconnecting to", "bold yellow"),
    "lost": ("✕ lost", "bold red"),
}


def connection_text(store: Store) -> Text:
    """Where the project is, for a status line: a file, or a server and how the link is."""
    if store.server is None:
        return Text(f" file {literal(Path(str(store.path)).name)} ", style="dim")
    mark, style = _CONNECTION_LOOKS.get(store.connection_state, ("?", "bold red"))
    where = f"{store.server.address.host}:{store.server.address.port}"
    return Text(f" {mark} {literal(where)} ", style=style)


def case_texts(
    case: Case, *, swapped: bool = False, hidden: Collection[str] = ()
) -> list[tuple[str, str]]:
    """Every string of a case a rater may see, under a heading, in the order shown.

    Pairs give A and B in the order shown (`swapped`); metadata keys in `hidden` are left out.
    """
    texts: list[tuple[str, str]] = [("ID", case.id)]
    if case.messages is None:
        texts.append(("INPUT", case.input or ""))
    for n, turn in enumerate(case.messages or (), start=1):
        head = f"TURN {n} {turn.role.upper()}"
        if turn.name is not None:
            texts.append((f"{head} name", turn.name))
        if turn.tool_call_id is not None:
            texts.append((f"{head} tool_call_id", turn.tool_call_id))
        if turn.content is not None:
            texts.append((head, turn.content))
        for call in turn.tool_calls or ():
            texts.append((f"{head} call {call.id}", call.function.name))
            texts.append((f"{head} call {call.id} arguments", call.function.arguments))
    if case.output is not None:
        texts.append(("OUTPUT", case.output))
    else:
        a, b = case.output_a or "", case.output_b or ""
        texts += [("A", b if swapped else a), ("B", a if swapped else b)]
    if case.split is not None:
        texts.append(("split", case.split))
    texts += [("tag", tag) for tag in case.tags]
    for key, value in case.metadata.items():
        if key not in hidden:
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            texts.append((f"metadata {key}", shown))
    return texts


def raw_case(texts: list[tuple[str, str]], *, key: str) -> Text:
    """The raw view: each text as its exact characters, under its heading."""
    shown = Text()
    shown.append(" RAW ", style="bold reverse")
    shown.append(" exact characters, unfolded · ", style="italic")
    shown.append("\\x1b", style=MARK_STYLE)
    shown.append(" control · ", style="italic")
    shown.append("<U+200B>", style=MARK_STYLE)
    shown.append(f" invisible · {key} returns\n", style="italic")
    for heading, text in texts:
        shown.append("\n")
        shown.append("── ", style="bold")
        title = raw(heading)
        title.stylize("bold")
        shown.append_text(title)
        shown.append(" ──", style="bold")
        shown.append("\n")
        shown.append_text(raw(text))
        shown.append("\n")
    return shown


def invisible_note(texts: list[tuple[str, str]], *, key: str | None) -> Text | None:
    """A warning that the case holds characters that draw nothing, or None when it holds none."""
    found: dict[str, int] = {}
    for _, text in texts:
        for char in invisible(text):
            found[char] = found.get(char, 0) + 1
    if not found:
        return None
    count = sum(found.values())
    names = ", ".join(
        f"{_code(char)} {unicodedata.name(char, 'unnamed').lower()}" + (f" ×{n}" if n > 1 else "")
        for char, n in list(found.items())[:3]
    )
    more = f" and {len(found) - 3} more kinds" if len(found) > 3 else ""
    where = f": {key} shows the raw text" if key else ""
    return Text(
        f"⚠ {count} invisible character{'s' if count != 1 else ''} ({names}{more}){where}",
        style="bold yellow",
    )
