"""Where a judge may send the API key, and what its params may not carry.

litellm reads the API key from the environment (`OPENAI_API_KEY`, ...) and
sends it to the judge's endpoint. A rubric TOML usually lives in a
repository, where a pull request can change it, so an endpoint named only by
a TOML file is not sent the key until the user chooses it:

- with `--api-base URL` on the command line (`gate`, `rubric import`);
- in `api_bases` in their config file;
- in an environment variable: `EVALTUI_API_BASE` (several separated by
  commas or spaces), or a provider's own that litellm reads, any `*_API_BASE`
  or `*_BASE_URL` such as `OPENAI_API_BASE`;
- as the `api_base` of a judge already stored in the project (`judge set
  --api-base`, the TUI, or an import the user allowed).

The provider's own default endpoint (an empty `api_base`) is always allowed.
A judge names an endpoint with its `api_base`, or with a URL inside its model
string (litellm sends `huggingface/https://host/...` to that host).

Params never carry an endpoint, a header or a credential: those are refused
wherever params come in (a rubric TOML, `judge set --param`, a run, an
export), naming the key.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evaltui.errors import InvalidInput
from evaltui.models import Judge

ENDPOINT_PARAMS = frozenset({"api_base", "base_url", "custom_llm_provider", "model", "messages"})
"""Params that would choose where the request goes, or replace what evaltui sends."""
CREDENTIAL_PARAMS = frozenset({"api_key", "extra_headers", "headers", "default_headers"})
"""Params that would carry a key or headers."""
_ENDPOINT_WORDS = ("url", "endpoint", "api_base")
_CREDENTIAL_WORDS = (
    *("key", "token", "secret", "password", "passwd"),
    *("auth", "credential", "cookie", "header"),
)
COUNT_PARAMS = frozenset(
    {"max_tokens", "max_completion_tokens", "max_new_tokens", "max_output_tokens"}
)
"""Token counts: they say "token" but carry a whole number, never a credential."""

_URL = re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def forbidden_param(params: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first param (dotted path, nested tables included) that may not be stored, and why.

    >>> forbidden_param({"temperature": 0, "max_tokens": 200}) is None
    True
    >>> forbidden_param({"extra_headers": {"Authorization": "Bearer x"}})[0]
    'extra_headers'
    >>> forbidden_param({"extra_body": {"Access_Token": "x"}})[0]
    'extra_body.Access_Token'
    """
    for name, value in params.items():
        lowered = str(name).lower()
        if lowered in ENDPOINT_PARAMS or any(w in lowered for w in _ENDPOINT_WORDS):
            return str(name), "endpoint"
        if lowered in COUNT_PARAMS and isinstance(value, int) and not isinstance(value, bool):
            continue
        if lowered in CREDENTIAL_PARAMS or any(w in lowered for w in _CREDENTIAL_WORDS):
            return str(name), "credential"
        if isinstance(value, Mapping):
            inner = forbidden_param(value)
            if inner is not None:
                return f"{name}.{inner[0]}", inner[1]
    return None


def check_params(params: Mapping[str, Any], where: str) -> None:
    """Refuse params carrying an endpoint, headers or a credential, in one line naming the key.

    `where` prefixes the key: `--param ` for the command line, `FILE: judge.params.`
    for a rubric TOML.
    """
    found = forbidden_param(params)
    if found is None:
        return
    name, kind = found
    if kind == "endpoint":
        raise InvalidInput(
            f"{where}{name}: a judge's model and endpoint are its own fields "
            "(judge set --model, --api-base) and evaltui writes the messages, never a param"
        )
    raise InvalidInput(
        f"{where}{name}: API keys, tokens and headers are read from the environment only "
        "(e.g. OPENAI_API_KEY), never stored"
    )


def endpoints(judge: Judge) -> list[str]:
    """The endpoints a judge names: its `api_base`, and a URL inside its model string.

    >>> endpoints(Judge(rubric="r", model="huggingface/https://h.example/v1", prompt="p"))
    ['https://h.example/v1']
    """
    named = [judge.api_base.strip()] if judge.api_base.strip() else []
    inside = _URL.search(judge.model)
    if inside is not None:
        named.append(judge.model[inside.start() :].strip())
    return named


def same_endpoint(url: str) -> str:
    """A URL as compared: scheme and host in lower case, no trailing slash.

    >>> same_endpoint(" HTTP://LocalHost:8000/v1/ ")
    'http://localhost:8000/v1'
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return text.rstrip("/")
    path = parts.path.rstrip("/")
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), path, parts.query, parts.fragment)
    )


def environment_endpoints(environ: Mapping[str, str] | None = None) -> set[str]:
    """Endpoints the environment names: `EVALTUI_API_BASE` and every `*_API_BASE` / `*_BASE_URL`."""
    environ = os.environ if environ is None else environ
    found = set(re.split(r"[,\s]+", environ.get("EVALTUI_API_BASE", "")))
    for name, value in environ.items():
        if name.upper().endswith(("_API_BASE", "_BASE_URL")):
            found.add(value)
    return {same_endpoint(u) for u in found if u.strip()}


def chosen_endpoints(
    *,
    given: Iterable[str] = (),
    configured: Iterable[str] = (),
    stored: Iterable[Judge] = (),
    environ: Mapping[str, str] | None = None,
) -> set[str]:
    """Every endpoint the user chose: on the command line, in the config, the environment, the project."""
    chosen = {same_endpoint(u) for u in [*given, *configured] if u.strip()}
    chosen |= {same_endpoint(u) for judge in stored for u in endpoints(judge)}
    return chosen | environment_endpoints(environ)


def check_endpoints(judge: Judge, chosen: set[str], source: str) -> None:
    """Refuse a judge from `source` (a TOML file) that would send the key where the user did not choose."""
    for url in endpoints(judge):
        if same_endpoint(url) not in chosen:
            raise InvalidInput(
                f"{source}: the [judge] endpoint {url!r} is named only by this file, so the API "
                f"key is not sent to it; to allow it, pass --api-base {shlex.quote(url)}"
            )
