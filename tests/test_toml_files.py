"""Every TOML file users write (study files, the TUI's settings and themes) is read by one function:
a bad file is one line naming it, never a traceback."""

import pytest

from depthprune.core.errors import UserError
from depthprune.core.parsing import read_toml
from depthprune.tui.config import load_settings
from depthprune.tui.themes import ThemeError, load_theme


def test_a_missing_unreadable_or_malformed_toml_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "bad.toml").write_text("k = [4,\n")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "folder.toml").mkdir()
    cases = {
        "nope.toml": "study file '{p}' (from --config) not found",
        "binary.toml": "study file '{p}' (from --config) is not a TOML text file",
        "folder.toml": "study file '{p}' (from --config) is not a TOML text file",
        "bad.toml": "{p}: malformed TOML (",
    }
    for name, expected in cases.items():
        path = tmp_path / name
        with pytest.raises(UserError) as caught:
            read_toml(path, "study file", "--config")
        assert str(caught.value).startswith(expected.format(p=path)) and "\n" not in str(caught.value)


def test_a_malformed_settings_file_or_theme_is_a_problem_not_an_exception(tmp_path):
    (tmp_path / "config.toml").write_text("theme = \n")
    (problem,) = load_settings(tmp_path).problems
    assert problem.startswith(f"{tmp_path / 'config.toml'}: malformed TOML (")
    (tmp_path / "broken.toml").write_bytes(b"\xff")
    with pytest.raises(ThemeError, match=r"theme file .*broken\.toml' is not a TOML text file"):
        load_theme(tmp_path / "broken.toml")
