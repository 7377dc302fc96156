"""The scope flags of `plan` and `submit`: which part of the cluster a campaign upgrades."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click

from kubeupgrade.errors import InvalidInput
from kubeupgrade.model.campaign import Campaign, Scope


def scope_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--selector", metavar="LABELS", default=None,
                           help="only the workers matching this label selector, e.g. pool=a")(command)
    command = click.option("--nodes", metavar="NAME,...", default=None,
                           help="only these workers (control planes are upgraded when they need it)")(command)
    return click.option("--only", type=click.Choice(["control-planes"]), default=None,
                        help="upgrade the control planes and no worker")(command)


def with_scope(campaign: Campaign, only: str | None, nodes: str | None, selector: str | None) -> Campaign:
    """The campaign with the flags' scope (they replace the file's `scope:` when given)."""
    if only is None and nodes is None and selector is None:
        return campaign
    if only and (nodes or selector):
        raise InvalidInput("--only control-planes upgrades no worker: drop --nodes/--selector")
    from kubeupgrade.kube.selectors import SelectorError, label_selector

    if selector is not None:
        try:
            label_selector(selector)
        except SelectorError as error:
            raise InvalidInput(f"--selector: {error}") from None
    workers = tuple(n.strip() for n in nodes.split(",") if n.strip()) if nodes is not None else None
    if workers == ():
        raise InvalidInput("--nodes: give at least one worker name")
    return replace(campaign, scope=Scope(only_control_planes=bool(only), workers=workers, selector=selector))
