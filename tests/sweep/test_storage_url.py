"""`--storage` is checked before the sweep imports DSPy, MLflow or Optuna."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from workbench.errors import UserError
from workbench.sweep.storage_url import check_storage_url, hide_password


@pytest.mark.parametrize("url, words", [
    ("redis://127.0.0.1:6379", "unsupported storage URL"),
    ("postgresql://postgres@127.0.0.1:1/none", "127.0.0.1:1 connection refused"),
    ("postgresql://postgres@127.0.0.1:notaport/none", "Port could not be cast"),
    ("postgresql://u:secret@127.0.0.1:1/none", "u:***@127.0.0.1:1"),
])
def test_bad_urls(url, words):
    with pytest.raises(UserError) as err:
        check_storage_url(url, timeout_s=2)
    assert err.value.field == "--storage" and words in str(err.value), err.value
    assert "secret" not in str(err.value)


def test_sqlite_paths(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_storage_url(f"sqlite:///{tmp_path}/afile/sub/optuna.db")
    with pytest.raises(UserError, match="is a folder, not a database file"):
        check_storage_url(f"sqlite:///{tmp_path}")
    check_storage_url(f"sqlite:///{tmp_path}/new/optuna.db")  # a folder to be made is fine
    assert not (tmp_path / "new").exists()


def test_reachable_server_passes():
    check_storage_url("postgresql://postgres@127.0.0.1:5432/postgres")  # the machine's PostgreSQL


def test_hide_password():
    assert hide_password("postgresql://a:b@h/db") == "postgresql://a:***@h/db"
    assert hide_password("sqlite:///x.db") == "sqlite:///x.db"


def test_refused_before_heavy_imports(tmp_path):
    """The CLI's own entry point in a fresh interpreter: nothing heavy was imported when it said no."""
    code = ("import sys; from workbench.cli import main; "
            "rc = main(['sweep', 'no-such.yaml', '--trials', '2', "
            "'--storage', 'postgresql://postgres@127.0.0.1:1/x']); "
            "print(rc, sorted(m for m in ('dspy', 'mlflow', 'optuna', 'litellm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "[]"], (out.stdout, out.stderr)
    assert out.stderr.strip() == ("error: --storage: cannot open postgresql://postgres@127.0.0.1:1/x: "
                                  "127.0.0.1:1 connection refused")
