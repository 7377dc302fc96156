"""The sandbox's JSON without the `json` package (kubeupgrade.sandbox.quickjson): for any text
and any value it answers as the `json` package does, by its C accelerator or by falling back to
the package itself."""

import json
import math
import random

import pytest

from kubeupgrade.sandbox import quickjson


def random_value(rng: random.Random, depth: int = 0):
    kinds = ["int", "float", "str", "bool", "null"] + (["list", "dict"] * 2 if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice([0, -1, rng.randrange(-10**20, 10**20)])
    if kind == "float":
        return rng.choice([0.5, -2.25e-7, 1e300, rng.uniform(-1e6, 1e6)])
    if kind == "str":
        alphabet = "ab \"\\/\n\t\x00\x1féü€😀${}"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(8)))
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = ["k", "é", 'q"uote', "", "sp ace", "😀"]
    return {rng.choice(keys) + str(rng.randrange(9)): random_value(rng, depth + 1)
            for _ in range(rng.randrange(5))}


def test_any_value_round_trips_as_the_json_package_writes_and_reads_it():
    for seed in range(300):
        rng = random.Random(seed)
        value = random_value(rng)
        text = quickjson.dumps(value)
        assert text == json.dumps(value, separators=(",", ":")), seed
        assert quickjson.loads(text) == json.loads(text) == value, seed
        spaced = json.dumps(value, indent=rng.choice([None, 1, 4]))
        padding = rng.choice(["", " ", "\n\t \r"])
        assert quickjson.loads(padding + spaced + padding) == value, seed


@pytest.mark.parametrize("text", [
    "", " ", "{", '{"a": }', "[1,]", '{"a": 1} x', '{"a": 1}{}', "'a'", '"\x01"', "01",
    '{"a": 1,}', "nul", "\f1", "1\v", "[1] [2]", '"\\x"', "[" * 10 + "]" * 9,
])
def test_malformed_text_raises_the_json_packages_own_error(text):
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        quickjson.loads(text)
    assert str(got.value) == str(expected.value)


def test_the_constants_json_accepts_are_read_as_it_reads_them():
    value = quickjson.loads('[NaN, Infinity, -Infinity, 1e400, -0.0, 12345678901234567890]')
    assert math.isnan(value[0]) and value[1:4] == [math.inf, -math.inf, math.inf]
    assert math.copysign(1, value[4]) == -1 and value[5] == 12345678901234567890
    assert quickjson.dumps([math.inf, -math.inf]) == "[Infinity,-Infinity]"


def test_a_value_json_cannot_write_is_refused_as_json_refuses_it():
    for value in ({"a": {1, 2}}, [object()], {(1, 2): 3}):
        with pytest.raises(TypeError):
            json.dumps(value)
        with pytest.raises(TypeError):
            quickjson.dumps(value)


def test_without_the_accelerator_the_json_package_answers(monkeypatch):
    monkeypatch.setattr(quickjson, "_scan", None)
    monkeypatch.setattr(quickjson, "_encode", None)
    value = {"a": [1, 2.5, "é", None, True]}
    assert quickjson.dumps(value) == '{"a":[1,2.5,"\\u00e9",null,true]}'
    assert quickjson.loads(' {"a": [1, 2.5, "\\u00e9", null, true]} ') == value
    with pytest.raises(json.JSONDecodeError):
        quickjson.loads("{")
