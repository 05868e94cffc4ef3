"""Cases as Rich renderables: chat turns by role, folded tool calls, markdown, word diffs.

Case text is untrusted. Every string from a case goes through `literal`
(evaltui.text's, the one the command line prints through too), which shows
control characters (terminal escape sequences among them) as visible `\\x1b`
codes and bidi controls as `\\u202e`, and is put on screen as a Rich `Text`
or `Markdown` built from plain text, so `[bold]` is shown, never interpreted.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.markdown import Markdown
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

_ROLE_STYLE = {
    "system": "bold magenta",
    "developer": "bold magenta",
    "user": "bold cyan",
    "assistant": "bold green",
    "tool": "bold yellow",
    "function": "bold yellow",
}


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
    block: RenderableType
    if markdown:
        block = Markdown(_hard_breaks(shown), code_theme="monokai", hyperlinks=False)
    else:
        block = Text(shown)
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
    parts = [Text(f"case {literal(case.id)}", style="bold"), case_input(case, expanded=False)]
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
