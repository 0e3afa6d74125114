"""The command line's surface: lazy subcommands, help on every option, --version and -h."""

from __future__ import annotations

import getpass
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from workers.cli import COMMANDS, main
from workers.cli_options import operator


def _every_command() -> Iterator[tuple[str, click.Command]]:
    context = click.Context(main)
    stack: list[tuple[str, click.Command]] = [
        (name, command)
        for name in main.list_commands(context)
        if (command := main.get_command(context, name)) is not None
    ]
    while stack:
        path, command = stack.pop()
        yield path, command
        if isinstance(command, click.Group):
            stack.extend((f"{path} {n}", c) for n, c in command.commands.items())


def test_the_help_table_says_what_each_command_says_of_itself() -> None:
    context = click.Context(main)
    for name, (_, summary) in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None and command.name == name
        assert summary == command.get_short_help_str(1000), name


def test_every_option_says_what_it_is_for() -> None:
    bare = [
        f"{path} {param.opts[0]}"
        for path, command in _every_command()
        for param in command.params
        if isinstance(param, click.Option) and not param.help
    ]
    assert bare == []


def test_help_imports_no_subcommand() -> None:
    probe = (
        "import sys; from workers.cli import main\n"
        "try: main(['--help'])\n"
        "except SystemExit: pass\n"
        "heavy = {'sqlalchemy', 'celery', 'pydantic'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, timeout=60)


def test_version_and_short_help() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--version"]).output.startswith("interactions, version ")
    assert "Exit codes: 0 done" in runner.invoke(main, ["-h"]).output
    assert "--json" in runner.invoke(main, ["timeline", "-h"]).output


def test_the_operator_is_the_login_user_or_else_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "ops.kim")
    assert operator() == "ops.kim"

    def no_user() -> str:
        raise OSError("no login name and no password-file entry")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert operator() == "unknown"
