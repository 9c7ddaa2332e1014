"""docs/settings.md, made from the config's own records: every setting's key, default, choices
and one-line description (each field's metadata in mind_core.config_schema), so that the
page cannot drift from the code. tests/core/test_settings_docs.py checks that it is current.

    python -m mind_core.settings_docs --write      # rewrite docs/settings.md
    python -m mind_core.settings_docs              # print it
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from mind_core.config import (
    ALIASES,
    VARIANTS,
    RunConfig,
    config_to_dict,
    flatten,
    implied_settings,
    resolve_config,
)
from mind_core.config_schema import field_doc

PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
REGENERATE = "python -m mind_core.settings_docs --write"


@attrs.frozen
class Setting:
    key: str  # dotted, as in --set key=value
    doc: str
    choices: tuple[str, ...]


@attrs.frozen
class Section:
    key: str  # "" for the top-level settings
    doc: str
    settings: tuple[Setting, ...]


def sections(cls: type = RunConfig, prefix: str = "", doc: str = "") -> Iterator[Section]:
    """cls's own settings as one section, then each nested record's, depth first: any record,
    whatever sections RunConfig has."""
    own = tuple(Setting(prefix + f.name, field_doc(f), _choices(f))
                for f in attrs.fields(cls) if not attrs.has(f.type))
    if own or not prefix:
        yield Section(prefix.rstrip("."), doc, own)
    for f in attrs.fields(cls):
        if attrs.has(f.type):
            yield from sections(f.type, f"{prefix}{f.name}.", field_doc(f) or f.type.__doc__)


def all_settings() -> dict[str, Setting]:
    return {s.key: s for section in sections() for s in section.settings}


def setting_doc(key: str) -> str:
    """The one-line description of a dotted key (an alias too); "" for an unknown key."""
    found = all_settings().get(ALIASES.get(key, key))
    return found.doc if found else ""


def undocumented() -> list[str]:
    """Every setting and section without a description: a test wants this empty."""
    missing = [s.key for s in sections() if s.key and not s.doc.strip()]
    return missing + [k for k, s in all_settings().items() if not s.doc.strip()]


def _choices(field: attrs.Attribute) -> tuple[str, ...]:
    if field.type is bool:
        return ("true", "false")
    return tuple(str(c) for c in getattr(field.validator, "choices", ()))


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (list, tuple)):
        return f"`[{', '.join(map(str, value))}]`"
    return f"`{value}`" if value != "" else '`""`'


def _variant_note(key: str, implied: dict[str, dict[str, Any]]) -> str:
    if not any(key in values for values in implied.values()):
        return ""
    by_value: dict[str, list[str]] = {}
    for variant, values in implied.items():
        by_value.setdefault(_shown(values[key]), []).append(variant)
    return " Set by `variant`: " + ", ".join(f"{v} ({', '.join(names)})"
                                             for v, names in by_value.items()) + "."


def _linked(text: str) -> str:
    """A docs/<name>.md in a description (written for a terminal too) as a link from here."""
    return re.sub(r"\bdocs/([\w-]+)\.md", r"[\1](\1.md)", text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The whole page, Markdown."""
    defaults = flatten(config_to_dict(resolve_config(base={})))
    implied = {variant: implied_settings(variant) for variant in VARIANTS}
    aliases: dict[str, list[str]] = {}
    for alias, key in ALIASES.items():
        aliases.setdefault(key, []).append(alias)
    out = ["# Settings", "",
           "<!-- Generated from mind_core/config_schema.py by `" + REGENERATE + "`; "
           "edit the descriptions there, not here. -->", "",
           "Every setting of a run, as written after `--set` (`mind run --set "
           "distill.epochs=4`), as a key of a TOML file (`[distill]` then `epochs = 4`; `mind "
           "presets --show NAME` writes one with these descriptions) or in the Python API's "
           "`settings=`.", "",
           "**Default** is what a run gets when nothing names the setting (a TOML file that "
           "leaves it out). Presets set many of them, and `mind run` without `--preset` uses "
           "the `demo` preset: `mind config --preset NAME` prints every value a preset "
           "resolves to. Settings the `variant` sets say so; naming them yourself wins "
           "([variants](algorithm.md#variants)).", ""]
    for section in sections():
        title = f"`{section.key}.*`" if section.key else "Top level"
        out += [f"## {title}", ""]
        if section.doc:
            out += [" ".join(section.doc.split()), ""]
        out += ["| setting | default | choices | description |", "|---|---|---|---|"]
        for s in section.settings:
            also = ", ".join(f"`{a}`" for a in aliases.get(s.key, ()))
            key = f"`{s.key}`" + (f" (or {also})" if also else "")
            choices = ", ".join(f"`{c}`" for c in s.choices)
            doc = _linked(s.doc) + _variant_note(s.key, implied)
            out.append(f"| {key} | {_shown(defaults[s.key])} | {_cell(choices)} | "
                       f"{_cell(doc)} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print docs/settings.md, or rewrite it.")
    parser.add_argument("--write", action="store_true", help=f"rewrite {PAGE}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        PAGE.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
