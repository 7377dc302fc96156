"""A file the agent replaces on a host is the old text or the new, whenever the agent dies:
real processes SIGKILLed at arbitrary moments while they write."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from kubeupgrade.host.files import TEMPORARY_SUFFIX, replace_file

pytestmark = pytest.mark.integration

# A stand-in agent that rewrites one file for ever, alternating two texts of different lengths.
WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from kubeupgrade.host.files import replace_file
    path, texts = Path(sys.argv[1]), [b"a" * 3_000_000 + b"\\n", b"deb https://pkgs.k8s.io/ /\\n" * 1000]
    print("ready", flush=True)
    n = 0
    while True:
        replace_file(path, texts[n % 2])
        n += 1
""")


def test_a_writer_killed_at_any_moment_leaves_the_old_text_or_the_new(tmp_path):
    path = tmp_path / "etc/apt/sources.list"
    path.parent.mkdir(parents=True)
    texts = {b"a" * 3_000_000 + b"\n", b"deb https://pkgs.k8s.io/ /\n" * 1000}
    rng = random.Random(7)
    for _ in range(15):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE)
        assert writer.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        if path.exists():  # killed before its first rename: nothing there yet, never a part
            assert path.read_bytes() in texts


def test_mode_and_text_are_kept_and_no_temporary_is_left(tmp_path):
    path = tmp_path / "kubernetes.repo"
    path.write_text("old\n")
    path.chmod(0o640)
    replace_file(path, b"new\n")
    assert path.read_text() == "new\n" and (path.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubernetes.repo"]
    replace_file(tmp_path / "fresh.list", b"x\n", mode=0o600)
    assert (tmp_path / "fresh.list").stat().st_mode & 0o777 == 0o600


def test_a_temporary_left_by_a_kill_is_written_over_and_a_link_written_through(tmp_path):
    (tmp_path / ("kubernetes.list" + TEMPORARY_SUFFIX)).write_text("half a li")
    replace_file(tmp_path / "kubernetes.list", b"whole\n")
    assert (tmp_path / "kubernetes.list").read_text() == "whole\n"
    assert not (tmp_path / ("kubernetes.list" + TEMPORARY_SUFFIX)).exists()
    kept = tmp_path / "managed/kubernetes.list"
    kept.parent.mkdir()
    kept.write_text("old\n")
    (tmp_path / "linked.list").symlink_to(kept)
    replace_file(tmp_path / "linked.list", b"new\n")
    assert (tmp_path / "linked.list").is_symlink() and kept.read_text() == "new\n"
