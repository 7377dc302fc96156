"""What the executor hands back from real processes, whatever the host's locale and whatever
bytes a tool prints: a result, never an exception, and answers in the words the agents read."""

from __future__ import annotations

import sys

import pytest

from kubeupgrade.host.executor import Command, LocalExecutor

pytestmark = pytest.mark.integration


def python(code: str) -> Command:
    return Command((sys.executable, "-c", code), timeout=30)


def test_bytes_that_are_not_utf8_come_back_replaced_not_raised():
    # a mirror's release file in Latin-1, a stray byte in a tool's message
    result = LocalExecutor().run(python(
        "import sys; sys.stdout.buffer.write(b'Hit:1 caf\\xe9 ok\\n'); "
        "sys.stderr.buffer.write(b'W: \\xff\\xfe\\n'); sys.exit(3)"))
    assert (result.exit_code, result.stdout, result.stderr) == (3, "Hit:1 caf\ufffd ok\n", "W: \ufffd\ufffd\n")


def test_a_command_that_times_out_with_such_bytes_comes_back_too():
    result = LocalExecutor().run(Command((sys.executable, "-c",
                                          "import sys, time; sys.stdout.buffer.write(b'\\xe9\\n'); "
                                          "sys.stdout.flush(); time.sleep(30)"), timeout=1.0))
    assert result.timed_out and result.stdout == "\ufffd\n"


def test_host_tools_answer_in_the_c_locale_whatever_the_hosts_language(monkeypatch):
    # systemd hands a service the LANG of /etc/locale.conf: apt would answer "Paket ... kann
    # nicht gefunden werden" where the agents look for "Unable to locate package"
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("LC_MESSAGES", "fr_FR.UTF-8")
    monkeypatch.setenv("NEEDRESTART_MODE", "a")
    result = LocalExecutor().run(python(
        "import os; print(os.environ.get('LC_ALL'), os.environ.get('DEBIAN_FRONTEND'), "
        "os.environ.get('NEEDRESTART_MODE'))"))
    # and no package asks a question, nor does needrestart restart services on its own
    assert result.stdout.split() == ["C", "noninteractive", "l"]


def test_the_sandbox_or_a_test_may_still_set_its_own_environment():
    result = LocalExecutor(extra_env={"KU_PROBE": "1"}).run(python(
        "import os; print(os.environ['KU_PROBE'], os.environ['LC_ALL'])"))
    assert result.stdout.split() == ["1", "C"]
