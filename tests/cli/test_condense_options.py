"""The options ``condense`` and ``simulate`` share are declared once, with the library's defaults."""

from __future__ import annotations

import dataclasses

from typer.testing import CliRunner

from fedcondense.cli import condense_options as opts
from fedcondense.cli.main import _mount, app
from fedcondense.cli.options import DEFAULT_ROWS_PER_CLASS, DEFAULT_SURVIVAL_ROWS
from fedcondense.protocol.condensation.condenser import CondenseConfig


def test_option_defaults_are_the_condenser_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(CondenseConfig)}
    assert opts.DEFAULTS == {k: fields[k] for k in opts.DEFAULTS}
    assert "10" in opts.ROWS_PER_CLASS.help and DEFAULT_ROWS_PER_CLASS == 10
    assert "40" in opts.ROWS.help and DEFAULT_SURVIVAL_ROWS == 40


def test_both_commands_offer_the_shared_options():
    _mount()
    runner = CliRunner()
    for command in ("condense", "simulate"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        for flag in ("--directions", "--sample-rate", "--init-share", "--clip-norm",
                     "--backend", "--rows-per-class", "--quiet"):
            assert flag in result.output, (command, flag)
