"""The notice of a campaign the broker lost with its data (pure: no I/O)."""

import json

import pytest

from kubeupgrade.workflow.broker_loss import NAMED, LostCampaign, from_last_read


def lost(**fields):
    values = dict(id="prod-20261207-000527-1a46e8", cluster="prod", state="running", source="/ops/prod.yaml",
                  target="1.31", last_read=1_796_000_000.0, noticed=1_796_000_005.0,
                  cordoned=("worker-1",), running=("worker-1: install-kubelet",))
    values.update(fields)
    return LostCampaign(**values)


def test_the_notice_names_the_cordoned_nodes_what_ran_and_what_to_do_in_one_line():
    text = lost().explain()
    assert "\n" not in text
    assert text.startswith("campaign prod-20261207-000527-1a46e8 (prod, running when last read) "
                           "was lost with the broker's data (found gone at ")
    assert "nodes it held cordoned: worker-1 (annotated kubeupgrade.io/cordoned-by=prod-20261207-000527-1a46e8)" in text
    assert "running then: worker-1: install-kubelet" in text
    assert "`kubeupgrade submit /ops/prod.yaml` again: it adopts the nodes" in text


def test_a_notice_with_nothing_cordoned_says_nothing_of_cordons_and_long_lists_are_counted():
    assert "cordoned" not in lost(cordoned=(), running=()).explain().split("again:")[0]
    many = tuple(f"worker-{i}" for i in range(NAMED + 7))
    text = lost(cordoned=many).explain()
    assert f"worker-{NAMED - 1} and 7 more" in text and f"worker-{NAMED}," not in text


def test_a_notice_reads_back_as_written():
    notice = lost(cordoned=("a", "b"))
    assert LostCampaign.from_json(notice.id, notice.to_json()) == notice


@pytest.mark.parametrize("raw", ["", "[]", "{}", '{"cluster": "prod"}', "not json",
                                 '{"cluster": "p", "state": "r", "last_read": "x", "noticed": 1, '
                                 '"cordoned": [], "running": []}'])
def test_a_damaged_notice_is_named_by_its_key(raw):
    with pytest.raises(ValueError, match=r"^damaged notice ku:lost:c-1: .*; inspect it, then delete it$"):
        LostCampaign.from_json("c-1", raw)


def test_the_notice_is_made_from_the_dispatchers_last_read():
    doc = {"id": "c-1", "cluster": "prod", "state": "running", "source": "c.yaml", "campaign": {"target": "1.31"}}
    entries = {
        "w-2": {"cordoned_by_us": True, "phases": [{"phase": "drain", "state": "running"}]},
        "w-1": {"cordoned_by_us": True, "phases": [{"phase": "drain", "state": "succeeded"},
                                                   {"phase": "install-kubelet", "state": "running"}]},
        "w-3": {"cordoned_by_us": False, "phases": [{"phase": "drain", "state": "pending"}]},
        "w-4": {"cordoned_by_us": True, "phases": [{"phase": "drain", "state": "succeeded"},
                                                   {"phase": "install-kubelet", "state": "pending",
                                                    "task_id": "t-1"}]},
        "@cluster": {"phases": [{"phase": "preflight", "state": "running"}]},
        "bad": "not an entry",
    }
    notice = from_last_read(doc, entries, last_read=10.0, noticed=12.0)
    assert notice.cordoned == ("w-1", "w-2", "w-4")
    # Sent, its start not yet read: it may be running on the host all the same. A cluster phase
    # is named by the record's entry for it (before, the notice then read back as damaged:
    # bench.soak --seed 51, campaign 1).
    assert notice.running == ("@cluster: preflight", "w-1: install-kubelet", "w-2: drain",
                              "w-4: install-kubelet (sent)")
    assert LostCampaign.from_json("c-1", notice.to_json()) == notice
    assert (notice.target, notice.source, notice.last_read, notice.noticed) == ("1.31", "c.yaml", 10.0, 12.0)


@pytest.mark.parametrize(("campaign_id", "field", "value"), [
    ("c-1", "cordoned", ["worker-1\x1b[2J"]),
    ("c-1", "running", ["../x: drain"]),
    ("c-1", "cordoned", "worker1"),
    ("C_1\x1b", None, None),
])
def test_a_forged_notice_naming_what_no_campaign_could_is_damaged(campaign_id, field, value):
    # Anything with a broker credential can write ku:lost:*: a notice whose id or nodes no
    # campaign could have is named as damaged, not shown as a loss.
    notice = lost(id="c-1")
    data = json.loads(notice.to_json())
    if field:
        data[field] = value
    with pytest.raises(ValueError, match="damaged notice"):
        LostCampaign.from_json(campaign_id, json.dumps(data))
