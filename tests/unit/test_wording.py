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
