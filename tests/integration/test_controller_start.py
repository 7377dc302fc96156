"""A controller whose dispatcher cannot start does not go on consuming tasks with nothing
deciding behind it: it stops, exit 1, with a line saying why (and its service manager starts
it again). Real redis-server, the real `kubeupgrade controller` command and Celery worker; the
dispatcher's start is made to fail (here, its constructor raises)."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize(("policy", "starts"), [("allkeys-lru", False), ("volatile-lru", True)])
def test_a_broker_that_may_evict_any_key_is_refused_and_one_evicting_expiring_keys_warned_of(
        redis_url, tmp_path, policy, starts):
    """A broker that evicts when full could drop a campaign record or a cluster lock without a
    word (a second campaign could then act on the cluster): the controller refuses it in one
    line before consuming anything. One that evicts only keys with a time to live (liveness,
    leases: built to lapse) is started with a warning. `doctor` names both."""
    import redis

    redis.Redis.from_url(redis_url).config_set("maxmemory-policy", policy)
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text(WORKING)
    identity = create_identities(tmp_path / "messages")["controller"]
    argv = [sys.executable, "-m", "kubeupgrade", "controller", "--kubeconfig", str(kubeconfig),
            "--broker", redis_url, "--concurrency", "1"]
    if not starts:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=90, env={**os.environ, **identity.env()})
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.strip() == (
            "error: the broker may evict any key (maxmemory-policy allkeys-lru): campaign records, cluster "
            "locks and leases could vanish without a word; set `maxmemory-policy noeviction` "
            "(deploy/redis/kubeupgrade-redis.conf)")
        assert not redis.Redis.from_url(redis_url).exists("ku:dispatcher:leader")
    else:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, **identity.env()})
        try:
            seen = ""
            for line in process.stdout:
                seen += line
                if "maxmemory-policy volatile-lru" in line:
                    break
            assert "liveness and leases then lapse early" in seen, seen[-2000:]
        finally:
            process.kill()
            process.wait(timeout=30)
    doctor = subprocess.run([sys.executable, "-m", "kubeupgrade", "doctor", "--broker", redis_url, "-o", "json"],
                            capture_output=True, text=True, timeout=90)
    row = next(r for r in json.loads(doctor.stdout) if r["name"] == "broker memory")
    assert not row["ok"] and f"maxmemory-policy {policy}" in row["detail"], row
