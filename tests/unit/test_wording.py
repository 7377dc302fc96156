"""Naming many things in one line: every name when they fit, else the first few and a count."""

import pytest

from kubeupgrade.model.wording import some_names


@pytest.mark.parametrize("count", range(0, 8))
def test_every_name_is_either_shown_or_counted(count):
    names = [f"worker-{i}" for i in range(count)]
    text = some_names(names, 3)
    shown = [n for n in names if n in text.split(" and ")[0].split(", ")]
    assert shown == names[:3]
    if count > 3:
        assert text.endswith(f" and {count - 3} more")
    else:
        assert "more" not in text and text == ", ".join(names)


def test_only_the_names_shown_are_described():
    described = []
    text = some_names([f"worker-{i}" for i in range(5000)], 2, lambda n: described.append(n) or f"{n} (cordoned)")
    assert text == "worker-0 (cordoned), worker-1 (cordoned) and 4998 more"
    assert described == ["worker-0", "worker-1"]
