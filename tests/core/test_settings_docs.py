"""Every setting has a one-line description stored with its field (mind_core.config_schema),
docs/settings.md is exactly what those descriptions generate, and `mind presets --show`'s TOML
carries them as comments without changing what it reads back to (issue 25)."""

from __future__ import annotations

import tomllib

import attrs
import pytest

from mind_core import settings_docs
from mind_core.config import FIELD_TYPES, RunConfig, resolve_config
from mind_core.config_files import config_to_toml, read_config_file
from mind_core.config_schema import field_doc


def _records(cls: type) -> list[type]:
    """cls and every record nested in it, whatever sections RunConfig has."""
    nested = [f.type for f in attrs.fields(cls) if attrs.has(f.type)]
    return [cls, *[r for n in nested for r in _records(n)]]


def test_every_field_of_every_record_has_a_one_line_description():
    missing = [f"{cls.__name__}.{f.name}" for cls in _records(RunConfig)
               for f in attrs.fields(cls) if not field_doc(f).strip()]
    assert missing == [], ("give each of these fields a description: "
                           "_field(\"...\", ...) in mind_core/config_schema.py")
    multi = [f"{cls.__name__}.{f.name}" for cls in _records(RunConfig)
             for f in attrs.fields(cls) if "\n" in field_doc(f)]
    assert multi == []
    assert settings_docs.undocumented() == []


def test_the_page_lists_every_setting_once():
    assert sorted(settings_docs.all_settings()) == sorted(FIELD_TYPES)
    page = settings_docs.render()
    for key in FIELD_TYPES:
        assert page.count(f"| `{key}`") == 1, key


def test_docs_settings_md_is_what_the_schema_generates():
    written = settings_docs.PAGE.read_text(encoding="utf-8")
    assert written == settings_docs.render(), (
        f"docs/settings.md is out of date: run `{settings_docs.REGENERATE}` and commit it")


def test_choices_defaults_and_aliases_come_from_the_schema():
    rows = {line.split(" | ")[0].split("`")[1]: line for line in
            settings_docs.render().splitlines() if line.startswith("| `")}
    assert "`max_prob`, `entropy`" in rows["inference.routing"]
    assert "| `pairwise` |" in rows["inference.routing"]  # the default
    assert "(or `distill.beta`, `beta`)" in rows["distillation.beta"]
    assert "Set by `variant`" in rows["allocation.mode"]
    assert "[precision](precision.md)" in rows["precision"]  # docs/ paths become links
    assert "| `0.035` |" in rows["distill.lr"]  # RunConfig's default, not PhaseConfig's
    assert settings_docs.setting_doc("beta") == settings_docs.setting_doc("distillation.beta")
    assert settings_docs.setting_doc("no.such") == ""


@pytest.mark.parametrize("preset", ["demo", "cifar100"])
def test_the_toml_of_a_preset_says_what_each_setting_does_and_reads_back(tmp_path, preset):
    cfg = resolve_config(preset)
    text = config_to_toml(cfg)
    assert "docs/settings.md" in text and "README.md" not in text
    lines = text.splitlines()
    section = ""
    for i, line in enumerate(lines):
        if line.startswith("["):
            section = line.strip("[]") + "."
            continue
        if not line or line.startswith("#"):
            continue
        key = section + line.split(" = ")[0]
        assert lines[i - 1] == f"# {settings_docs.setting_doc(key)}", key
    path = tmp_path / "x.toml"
    path.write_text(text, encoding="utf-8")
    assert resolve_config(base=read_config_file(path)) == cfg
    assert resolve_config(base=tomllib.loads(text)) == cfg


def test_main_prints_the_page(capsys):
    assert settings_docs.main([]) == 0
    assert capsys.readouterr().out == settings_docs.render()
