"""Text from the record or a host, made safe for the operator's terminal (pure)."""

import io

from kubeupgrade.cli.exitcodes import report
from kubeupgrade.cli.terminal import plain_text, printable
from kubeupgrade.errors import RuntimeFailure


def test_control_characters_are_shown_as_escapes_and_everything_else_is_kept():
    assert printable("a\x1b[31mb\x07c\x7fd\x9be\rf") == "a\\x1b[31mb\\x07c\\x7fd\\x9be\\x0df"
    assert printable("line 1\n\tline 2 — Grüße, 日本 [upgrade/apply]") == "line 1\n\tline 2 — Grüße, 日本 [upgrade/apply]"


def test_rich_reads_no_markup_in_plain_text():
    assert plain_text("[/etc/kubernetes] [bold]x[/bold]").plain == "[/etc/kubernetes] [bold]x[/bold]"


def test_an_error_quoting_a_host_or_the_record_reaches_stderr_escaped():
    stream = io.StringIO()
    assert report(RuntimeFailure("kubeadm said: \x1b]0;owned\x07 done"), stream) == 1
    assert stream.getvalue() == "error: kubeadm said: \\x1b]0;owned\\x07 done\n"
