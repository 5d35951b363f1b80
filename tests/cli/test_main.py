"""The console entry point: an internal error is one line and exit 1, never a traceback."""

from __future__ import annotations

import pytest

from fedcondense.cli import main as cli_main


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("unexpected state\nsecond line")


def test_internal_error_is_one_line_without_traceback(monkeypatch, capsys):
    monkeypatch.delenv("FEDCONDENSE_TRACEBACK", raising=False)
    monkeypatch.setattr(cli_main, "_mount", lambda: None)
    monkeypatch.setattr(cli_main, "app", _boom)
    with pytest.raises(SystemExit) as ended:
        cli_main.main()
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error (RuntimeError: unexpected state)" in err
    assert "FEDCONDENSE_TRACEBACK=1" in err


def test_traceback_on_request(monkeypatch):
    monkeypatch.setenv("FEDCONDENSE_TRACEBACK", "1")
    monkeypatch.setattr(cli_main, "_mount", lambda: None)
    monkeypatch.setattr(cli_main, "app", _boom)
    with pytest.raises(RuntimeError, match="unexpected state"):
        cli_main.main()


def test_user_errors_keep_exit_code_2(monkeypatch, capsys):
    def refuse(*args: object, **kwargs: object) -> None:
        raise cli_main.FedcondenseError("data.csv: row 3, column 'age': not a number; fix it.")

    monkeypatch.setattr(cli_main, "_mount", lambda: None)
    monkeypatch.setattr(cli_main, "app", refuse)
    with pytest.raises(SystemExit) as ended:
        cli_main.main()
    assert ended.value.code == 2
    assert capsys.readouterr().err == "error: data.csv: row 3, column 'age': not a number; fix it.\n"
