"""The README's after-`sam deploy` commands are ones the `flowlink` CLI accepts as written."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from flowlink.cli import build_parser

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_deploy_section_flowlink_commands_parse():
    section = README.read_text().split("### Deploying to AWS", 1)[1].split("\n### ", 1)[0]
    commands = [
        shlex.split(line.split("#", 1)[0])[1:]
        for line in section.splitlines()
        if line.startswith(".venv/bin/flowlink ")
    ]
    subcommands = {" ".join(argv[:2]) for argv in commands}
    assert {"admin init", "keys create", "keys list", "keys revoke"} <= subcommands
    assert any(argv[0] == "enrollment-token" for argv in commands)
    for argv in commands:
        args = build_parser().parse_args(argv)  # argparse exits (fails the test) on anything unknown
        assert args.func.__name__ != "<lambda>", f"{argv} only prints help"
