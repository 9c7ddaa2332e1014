"""Settings: every float key refuses every non-finite value, whichever way it is written, and
finite values are judged by the key's own range only; strict JSON for whatever a run writes."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mind_core.config import (
    ALIASES,
    FIELD_TYPES,
    ConfigError,
    config_from_dict,
    config_to_dict,
    resolve_config,
)
from mind_core.events import dumps

FLOAT_KEYS = sorted(key for key, kind in FIELD_TYPES.items() if kind is float)
SPELLINGS = {key: [key, *(alias for alias, real in ALIASES.items() if real == key)]
             for key in FLOAT_KEYS}
# Infinities and NaNs, including NaNs with any payload and sign (from their bit patterns).
NON_FINITE = st.sampled_from([math.inf, -math.inf, math.nan]) | st.builds(
    lambda sign, mantissa: struct.unpack("<d", struct.pack("<Q", sign << 63 | 0x7FF << 52
                                                           | mantissa))[0],
    st.integers(0, 1), st.integers(1, 2**52 - 1))


@st.composite
def written(draw, value: float) -> object:
    """value as a user or a file could give it: a float, or one of its textual spellings."""
    if not draw(st.booleans()):
        return value
    if math.isnan(value):
        text = draw(st.sampled_from(["nan", "NaN", "NAN", "+nan", "-nan"]))
    else:
        text = draw(st.sampled_from(["inf", "Infinity", "INF", "1e999", "9" * 400]))
        text = ("-" if value < 0 else draw(st.sampled_from(["", "+"]))) + text
    return f" {text} " if draw(st.booleans()) else text


@given(st.sampled_from(FLOAT_KEYS), st.data())
def test_every_non_finite_float_is_refused_naming_its_key(key, data):
    value = data.draw(NON_FINITE)
    spelled = data.draw(st.sampled_from(SPELLINGS[key]))
    raw = data.draw(written(value))
    with pytest.raises(ConfigError) as err:
        resolve_config("demo", {spelled: raw})
    assert err.value.key == key and "finite" in err.value.message
    assert "\n" not in str(err.value)


@given(st.sampled_from(FLOAT_KEYS), NON_FINITE)
def test_a_saved_config_with_a_non_finite_float_is_refused(key, value):
    data = config_to_dict(resolve_config("demo"))
    section, field = key.split(".")
    data[section][field] = value
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert err.value.key == key


UPPER_BOUNDS = {"ewc.alpha": 1.0}  # a share: alpha * old Fisher + (1 - alpha) * new


@given(st.sampled_from(FLOAT_KEYS), st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_meet_only_their_keys_own_range(key, value):
    try:
        cfg = resolve_config("demo", {key: repr(value)})
    except ConfigError as err:
        assert err.key == key and "finite" not in err.message
        # Every float setting takes every positive value, up to its bound if it has one.
        assert value <= 0 or value > UPPER_BOUNDS.get(key, float("inf"))
    else:
        section, field = key.split(".")
        assert getattr(getattr(cfg, section), field) == value


JSONABLE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4), max_leaves=20)


@given(JSONABLE)
def test_what_a_run_writes_is_strict_json(value):
    """Every NaN or infinity becomes null; everything else survives a strict reader."""
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    def finite_or_none(x):
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, list):
            return [finite_or_none(v) for v in x]
        if isinstance(x, dict):
            return {k: finite_or_none(v) for k, v in x.items()}
        return x

    assert json.loads(dumps(value), parse_constant=refuse) == finite_or_none(value)
