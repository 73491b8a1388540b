"""Quoting of template values for the two places they land: bash code and ``#SBATCH`` lines.

Rendering quotes by default: the jinja environment's ``finalize`` hook passes every ``{{ ... }}``
output through :func:`finalize`, which shell-quotes any value that is not already marked as
quoted. So a template author who forgets a filter still gets a quoted value; the filters below
only choose a different quoting (``sbatch``) or join a list (``shell_words``).
"""

from __future__ import annotations

import shlex
from typing import Any

from ..errors import TemplateError


class Quoted(str):
    """A string that is already safe where it is rendered (quoted, or an int's digits)."""


def shell_quote(value: Any) -> Quoted:
    """One shell word whose value is exactly ``value`` (``shlex.quote``); ints stay bare."""
    if isinstance(value, Quoted):
        return value
    if isinstance(value, bool):
        return Quoted("true" if value else "false")
    if isinstance(value, int):
        return Quoted(str(value))
    if value is None:
        raise TemplateError("a template used an unset value in shell code; guard it with {% if %}")
    text = str(value)
    if "\0" in text:
        raise TemplateError(f"value {text!r} holds a NUL byte, which no shell word can carry")
    return Quoted(shlex.quote(text))


def shell_quote_always(value: Any) -> Quoted:
    """Like :func:`shell_quote` but always in single quotes, even when no quoting is needed.

    For values shellcheck would misread bare, e.g. a comma list in an array (SC2054).
    """
    text = shell_quote(str(value))
    if text.startswith("'"):
        return text
    return Quoted("'" + text + "'")  # shlex left it bare, so it holds no quote to escape


def shell_words(words: Any) -> Quoted:
    """A list of strings as space-separated, individually quoted shell words."""
    if isinstance(words, str) or not hasattr(words, "__iter__"):
        raise TemplateError(f"shell_words expects a list of words, got {words!r}")
    return Quoted(" ".join(shell_quote(w) for w in words))


def sbatch_quote(value: Any) -> Quoted:
    """A value for an ``#SBATCH --opt=VALUE`` line, as sbatch's own line parser reads it.

    sbatch splits directive lines itself (not through a shell): whitespace separates arguments,
    single or double quotes group, a backslash escapes the next character even inside quotes, and
    an unquoted ``#`` starts a comment. So: plain values stay bare; anything else is put in double
    quotes with ``\\`` and ``"`` escaped. A newline cannot be carried on one line and is refused,
    and so is ``packjob`` (sbatch blanks that word anywhere in a directive line).
    """
    if isinstance(value, bool):
        raise TemplateError("a boolean cannot be an #SBATCH value")
    if isinstance(value, int):
        return Quoted(str(value))
    if value is None:
        raise TemplateError("a template used an unset value in an #SBATCH line")
    text = str(value)
    bad = [c for c in ("\n", "\r", "\0") if c in text]
    if bad:
        raise TemplateError(
            f"#SBATCH value {text!r} contains {bad[0]!r}; sbatch reads one directive per line"
        )
    if "packjob" in text.lower():
        raise TemplateError(f"#SBATCH value {text!r} contains 'packjob', which sbatch blanks out")
    if text and all(c.isalnum() or c in "%_-.,:/=+@" for c in text):
        return Quoted(text)
    return Quoted('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')


def finalize(value: Any) -> Any:
    """Jinja ``finalize`` hook: quote for the shell unless a filter already did."""
    if isinstance(value, Quoted):
        return value
    return shell_quote(value)


FILTERS = {
    "shq": shell_quote,
    "shq_always": shell_quote_always,
    "shell_words": shell_words,
    "sbatch": sbatch_quote,
}
