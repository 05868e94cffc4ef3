"""Stored text made safe for a terminal: the one place the CLI and the TUI make it so.

Names, notes, critiques, ids and metadata are whatever someone typed or
imported, and a terminal obeys what it is sent: `\\x1b]52;...` writes the
clipboard, `\\x1b[2J` clears the screen, a C1 byte `\\x9b` starts a sequence
in some terminals, and a bidi override reorders what is shown. `literal`
writes every such character out as a visible code, so the text is shown,
never obeyed; `json_text` does the same for JSON output with JSON's own
escapes; `echo` is how the command line prints.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 controls but newline and tab, DEL, and C1 controls."""
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
"""Bidi marks, embeddings, overrides and isolates; the line and paragraph separators."""
_BREAKS = {"\n": "\\n", "\t": "\\t"}
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
"""What json.dumps leaves as it is (it escapes only C0 controls) that a terminal may obey."""


def literal(text: object, *, one_line: bool = False) -> str:
    r"""Text with every character a terminal would obey shown as a visible code.

    Control characters (escape sequences among them) become `\xNN`, bidi
    controls `\uNNNN`; newline and tab stay, unless `one_line`, for a field
    of a one-line output (a name in a table), where they become `\n` and `\t`
    so a value cannot start a line of its own. Rich markup is left as it is:
    callers put the result on screen as plain text.

    >>> literal("a\x1b[2Jb\x07 [red]x")
    'a\\x1b[2Jb\\x07 [red]x'
    >>> literal("bob\u202e\nok", one_line=True)
    'bob\\u202e\\nok'
    """
    shown = _CONTROL.sub(_code, str(text))
    shown = _BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", shown)
    if one_line:
        shown = shown.replace("\n", _BREAKS["\n"]).replace("\t", _BREAKS["\t"])
    return shown


def field(value: object) -> str:
    r"""A stored value for one field of a one-line output: `literal(value, one_line=True)`.

    >>> field("alice\nok   all checks pass")
    'alice\\nok   all checks pass'
    """
    return literal(value, one_line=True)


def edited(text: str, original: str, *, one_line: bool = False) -> str:
    r"""What an editor that was given `literal(original)` holds: `original` while the text is
    still what was shown, else the text as edited (control characters then stay written out).

    >>> edited("m\x1b[2J", "m[2J") == "m[2J", edited("m2", "m[2J")
    (True, 'm2')
    """
    return original if text == literal(original, one_line=one_line) else text


def _code(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def json_text(value: Any) -> str:
    r"""`value` as one line of JSON a terminal shows as it is (non-ASCII text kept readable).

    json.dumps escapes C0 controls (`\u001b`) but leaves DEL, C1 controls and
    bidi controls raw when it keeps non-ASCII text; here they get JSON escapes too.

    >>> json_text({"rater": "bob\x1b[2J\x9b\u202e", "κ": 0.5})
    '{"rater": "bob\\u001b[2J\\u009b\\u202e", "κ": 0.5}'
    """
    dumped = json.dumps(value, ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def echo(text: object = "", *, file: TextIO | None = None) -> None:
    """Print a line of output (stdout unless `file`), every control character shown as a code."""
    print(literal(text), file=file or sys.stdout)
