"""The node owner's hook allowlist: whole-word argv prefixes; one hook outside it and none run."""

import pytest

from kubeupgrade.errors import InvalidInput
from kubeupgrade.security.hooks import allowed, check_hooks, load_allowlist
from kubeupgrade.security.signing import Unauthorized


def test_prefixes_match_whole_words_only(tmp_path):
    listed = tmp_path / "allow"
    listed.write_text("# the node owner's\n\n/usr/local/bin/drain-check\nsystemctl restart 'my exporter'\n")
    prefixes = load_allowlist(listed)
    assert prefixes == [("/usr/local/bin/drain-check",), ("systemctl", "restart", "my exporter")]
    assert allowed(("/usr/local/bin/drain-check", "--node", "w1"), prefixes)
    assert allowed(("systemctl", "restart", "my exporter", "now"), prefixes)
    for argv in (("/usr/local/bin/drain-check-all",), ("systemctl", "restart"), ("systemctl", "stop", "x"),
                 ("sh", "-c", "/usr/local/bin/drain-check"), ()):
        assert not allowed(argv, prefixes), argv


def test_one_hook_outside_the_list_refuses_them_all_and_no_list_allows_all(tmp_path):
    listed = tmp_path / "allow"
    listed.write_text("/usr/local/bin/drain-check\n")
    check_hooks([("/usr/local/bin/drain-check",)], listed)
    with pytest.raises(Unauthorized, match="`touch /tmp/x` is not in this node's allowlist"):
        check_hooks([("/usr/local/bin/drain-check",), ("touch", "/tmp/x")], listed)
    check_hooks([("anything", "at all")], None)


def test_an_unreadable_list_is_named(tmp_path):
    with pytest.raises(InvalidInput, match="cannot read it"):
        load_allowlist(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.write_text("ok\n'unterminated\n")
    with pytest.raises(InvalidInput, match="broken, line 2"):
        load_allowlist(broken)
    latin = tmp_path / "latin"
    latin.write_bytes("/usr/local/bin/v\xe9rif\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match=r"latin: not UTF-8 text \(byte 0xe9 at offset 16\)"):
        load_allowlist(latin)
