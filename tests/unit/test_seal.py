"""The controller's seals (kubeupgrade/workflow/seal.py), as pure values: what one vouches for
cannot be edited, moved to another campaign or hop, or read as the other kind of seal."""

from __future__ import annotations

import json

import pytest

from kubeupgrade.workflow.seal import Acceptance, RecordSeal, SealBroken

CONTROLLER = RecordSeal(b"the controller's message key")


def test_a_sealed_verification_reads_back_for_its_campaign_and_hop_only():
    text = CONTROLLER.seal_hop("verified", "c-1", 2, "v1.31.14")
    CONTROLLER.check_hop("verified", "c-1", 2, text)
    with pytest.raises(SealBroken, match="campaign c-1's hop 3, copied here"):
        CONTROLLER.check_hop("verified", "c-2", 2, text)
    with pytest.raises(SealBroken, match="hop 1's verification seal is campaign c-1's hop 3"):
        CONTROLLER.check_hop("verified", "c-1", 0, text)


@pytest.mark.parametrize("field, value, why", [
    ("hop", 0, "does not verify with this controller's key"),
    ("campaign", "c-2", "does not verify with this controller's key"),
    ("version", "v1.32.0", "does not verify with this controller's key"),
    ("fact", "resolved", "unreadable")])
def test_an_edited_verification_seal_does_not_verify(field, value, why):
    stored = json.loads(CONTROLLER.seal_hop("verified", "c-1", 2, "v1.31.14"))
    stored[field] = value
    with pytest.raises(SealBroken, match=why):
        CONTROLLER.check_hop("verified", str(stored["campaign"]), int(stored["hop"]), json.dumps(stored))


def test_only_the_controllers_key_makes_a_verification_seal():
    forged = RecordSeal(b"an agent's guess").seal_hop("verified", "c-1", 0, "v1.31.14")
    with pytest.raises(SealBroken, match="does not verify with this controller's key"):
        CONTROLLER.check_hop("verified", "c-1", 0, forged)
    with pytest.raises(SealBroken, match="hop 1 has no sealed verification"):
        CONTROLLER.check_hop("verified", "c-1", 0, None)
    for garbage in ("{", "[]", '{"campaign": "c-1", "hop": "x"}', "null"):
        with pytest.raises(SealBroken, match="unreadable"):
            CONTROLLER.check_hop("verified", "c-1", 0, garbage)


def test_an_acceptance_is_no_verification_and_a_verification_no_acceptance():
    accepted = CONTROLLER.seal(Acceptance("c-1", "prod", "0" * 64, ("1" * 64,), ("1.31",)))
    with pytest.raises(SealBroken, match="unreadable"):
        CONTROLLER.check_hop("verified", "c-1", 0, accepted)
    # Given every field the other reader looks for, the MAC still tells them apart.
    both = {**json.loads(accepted), "fact": "verified", "hop": 0, "version": "v1.31.14"}
    with pytest.raises(SealBroken, match="does not verify"):
        CONTROLLER.check_hop("verified", "c-1", 0, json.dumps(both))
    verified = CONTROLLER.seal_hop("verified", "c-1", 0, "v1.31.14")
    with pytest.raises(SealBroken, match="unreadable"):
        CONTROLLER.open("c-1", verified)


def test_a_sealed_version_is_no_verification_and_reads_back_as_its_version():
    resolved = CONTROLLER.seal_hop("resolved", "c-1", 0, "1.31.14")
    assert CONTROLLER.check_hop("resolved", "c-1", 0, resolved) == "1.31.14"
    with pytest.raises(SealBroken, match="hop 1's sealed verification is unreadable"):
        CONTROLLER.check_hop("verified", "c-1", 0, resolved)
    with pytest.raises(SealBroken, match="hop 1 has no sealed version: this controller never resolved"):
        CONTROLLER.check_hop("resolved", "c-1", 0, None)
    edited = {**json.loads(resolved), "version": "1.30.4"}
    with pytest.raises(SealBroken, match="version seal does not verify"):
        CONTROLLER.check_hop("resolved", "c-1", 0, json.dumps(edited))
