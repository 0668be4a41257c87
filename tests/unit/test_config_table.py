"""The README's configuration table is the one generated from Settings, and every setting has a description."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbook_sync import config_table
from playbook_sync.config import Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_matches_settings():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert config_table.replace(readme) == readme, "README's table drifted from Settings: run `make config-table`"


def test_every_setting_is_in_the_table_once():
    rows = [line for line in config_table.table().splitlines()[2:]]
    assert [row.split("`")[1] for row in rows] == [name.upper() for name in Settings.model_fields]


def test_an_undescribed_setting_fails_the_table(monkeypatch):
    monkeypatch.delitem(config_table.DESCRIPTIONS, "top_k")
    with pytest.raises(KeyError, match="top_k"):
        config_table.table()


def test_the_command_prints_the_table(capsys):
    assert config_table.main([]) == 0
    assert capsys.readouterr().out == config_table.table()
    assert config_table.main(["--bogus"]) == 2
