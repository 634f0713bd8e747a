"""`veloz … --help` in plain words, for every command at once.

Typer's help shows a type tag beside every option (`--stdio <bool>`, `--port <int>`,
even `--help <bool>`) and keeps a docstring's line breaks, so a first sentence that
spans two source lines reads as if cut where the source line ended. `plain_help` walks
the command tree once: a flag shows no value, an option shows a name for its value
(`--port PORT`), an argument shows its name only, and help paragraphs are reflowed (one
starting with `\\b` keeps its lines, as in click), with each command's short help its
whole first paragraph, never truncated. Help is plain text: square brackets are escaped,
so `[default: x]` or `s3://bucket[/prefix]` print as written instead of being taken
for Rich markup (which fails on an unmatched closing tag).
"""

import inspect
from typing import Any

from rich.markup import escape
from typer.core import TyperArgument, TyperGroup


class PlainHelpGroup(TyperGroup):
    """The root group (`typer.Typer(cls=PlainHelpGroup)`): built last, once every
    sub-command exists, it rewrites the help of the whole tree."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_help(self)


def plain_help(command: Any) -> Any:
    """`command` (a click command from `typer.main.get_command`) and its sub-commands
    with their help text and option metavars rewritten; returns `command`."""
    if command.help:
        command.help = escape(reflow(command.help))
        command.short_help = command.help.split("\n\n")[0]
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if isinstance(param, TyperArgument):
            param.__class__ = _UntypedArgument  # the same object, shown without a tag
            continue
        if param.param_type_name != "option":
            continue
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        elif param.metavar is None:
            longest = max(param.opts, key=len).lstrip("-")
            param.metavar = longest.replace("-", "_").upper()
        if param.help:
            param.help = escape(reflow(param.help))
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
    return command


class _UntypedArgument(TyperArgument):
    """An argument, whose name already says what it is, without a type tag beside it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def reflow(text: str) -> str:
    """Paragraphs (blank-line separated) with their single line breaks made spaces."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)
