"""A controller whose dispatcher cannot start does not go on consuming tasks with nothing
deciding behind it: it stops, exit 1, with a line saying why (and its service manager starts
it again). Real redis-server, the real `kubeupgrade controller` command and Celery worker; the
dispatcher's start is made to fail (here, its constructor raises)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from kubeupgrade.security.messages import create_identities
from tests.unit.test_kubeconfig_errors import WORKING

pytestmark = pytest.mark.integration

FAILING_START = textwrap.dedent("""
    import sys
    from kubeupgrade.workflow import dispatcher

    def refuse(self, *args, **kwargs):
        raise RuntimeError("injected: the dispatcher cannot be made")

    dispatcher.Dispatcher.__init__ = refuse
    from kubeupgrade.cli.entry import main
    sys.argv = ["kubeupgrade", *sys.argv[1:]]
    sys.exit(main())
""")


def test_a_controller_whose_dispatcher_cannot_start_stops_and_says_why(redis_url, tmp_path):
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text(WORKING)  # nothing listens there: nothing here calls the API server
    identity = create_identities(tmp_path / "messages")["controller"]
    result = subprocess.run(
        [sys.executable, "-c", FAILING_START, "controller", "--kubeconfig", str(kubeconfig),
         "--broker", redis_url, "--concurrency", "1"],
        capture_output=True, text=True, timeout=90, env={**os.environ, **identity.env()})
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: the dispatcher did not start: RuntimeError: injected: the dispatcher cannot be made", last
    assert "dispatcher started" not in result.stderr
