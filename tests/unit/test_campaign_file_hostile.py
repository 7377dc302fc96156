"""Any campaign file, however wrong, is either a Campaign or one InvalidInput line naming the
file and the key: never another exception (a traceback at the operator's prompt).

Hostile values are put at random places of the shipped examples, so every key the parser reads
is reached with every kind of wrong value: wrong types, empty and over-long strings, control
characters, path-like and flag-like text, numbers out of range.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeupgrade.campaign_file import campaign_from_dict, parse_campaign
from kubeupgrade.errors import InvalidInput

EXAMPLES = [yaml.safe_load(path.read_text()) for path in
            sorted((Path(__file__).parents[2] / "examples").glob("campaign*.yaml"))]

WRONG_VALUES = [None, True, False, 0, -1, 10**30, 1.5, float("inf"), "", " ", "\x00", "\n",
                "a" * 5000, "America", "../../etc/passwd", "--force", "v1.31.0; rm -rf /", "1.31",
                "v1.31.2", "25%", "101%", "-5%", "0s", "999999999h", "*", [], {}, [None], [[]],
                {"": None}, {"x": 1}]
HOSTILE = st.one_of(
    st.sampled_from(WRONG_VALUES),
    st.text(max_size=40),
    st.integers(),
    st.lists(st.text(max_size=8), max_size=3),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


@st.composite
def damaged_documents(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        if not path:
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        # A copy: WRONG_VALUES' dicts and lists are shared between examples. Put in place
        # as they are, a later damage in the same document could write into one (even put it
        # inside itself: a cycle), changing what every later example draws.
        parent[path[-1]] = copy.deepcopy(draw(HOSTILE))
    return document


def _refused_cleanly_or_accepted(document: dict[str, Any], as_yaml: bool = True) -> None:
    try:
        if as_yaml:
            parse_campaign(yaml.safe_dump(document, allow_unicode=True), "campaign.yaml")
        else:  # the validation alone: the YAML reader is exercised by the random cases
            campaign_from_dict(document, "campaign.yaml")
    except InvalidInput as error:
        message = str(error)
        assert "\n" not in message and "\r" not in message
        assert message.startswith("campaign.yaml: ")


def test_every_key_with_every_wrong_value():
    # Exhaustive over one change at a time: each key (and list item) of each example, replaced
    # by each wrong value. Random combinations of changes follow below.
    for example in EXAMPLES:
        for path in _paths(example)[1:]:
            for value in WRONG_VALUES:
                document = copy.deepcopy(example)
                parent = document
                for step in path[:-1]:
                    parent = parent[step]
                parent[path[-1]] = value
                try:
                    _refused_cleanly_or_accepted(document, as_yaml=False)
                except Exception as error:  # name the case: which key, which value
                    raise AssertionError(f"{path} = {value!r:.40}: {error!r}") from error


@settings(max_examples=600, deadline=None)
@given(damaged_documents())
def test_a_damaged_campaign_is_refused_in_one_line_naming_the_file(document):
    _refused_cleanly_or_accepted(document)


def test_a_campaign_nested_deeper_than_the_reader_recurses_is_refused_in_one_line():
    import pytest

    text = 'cluster: prod\ntarget: "1.31"\npolicies: ' + "[" * 20000 + "]" * 20000 + "\n"
    with pytest.raises(InvalidInput, match=r"^campaign.yaml: nested too deep to read"):
        parse_campaign(text, "campaign.yaml")


def test_an_input_file_is_read_only_up_to_its_limit(tmp_path):
    import pytest

    from kubeupgrade.campaign_file import MAX_INPUT_BYTES, load_campaign, read_input_file

    big = tmp_path / "big.yaml"
    big.write_bytes(b"cluster: prod\n# " + b"x" * MAX_INPUT_BYTES + b"\n")
    with pytest.raises(InvalidInput, match=rf"^{big}: larger than 8 MiB, the most a campaign file"):
        load_campaign(big)
    # a device with no end (or a pipe that never closes) is refused after the limit too
    with pytest.raises(InvalidInput, match=r"^/dev/zero: larger than 8 MiB, the most a listing file"):
        read_input_file("/dev/zero", "listing")
    with pytest.raises(InvalidInput, match=rf"^{tmp_path}: cannot read campaign file: Is a directory$"):
        load_campaign(tmp_path)
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"#" * (MAX_INPUT_BYTES - 1) + b"\n")
    assert read_input_file(exact, "campaign").endswith("#\n")
