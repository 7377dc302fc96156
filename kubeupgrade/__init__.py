"""kubeupgrade: safe, resumable upgrades of kubeadm clusters.

The public Python API lives in `kubeupgrade.api`; this package root only re-exports it lazily so
that importing a pure submodule (versions, planning) never pulls in Celery or the kubernetes client.
"""

__version__ = "0.1.0"


def submit(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Submit an upgrade campaign; see `kubeupgrade.api.submit`."""
    from kubeupgrade.api import submit as _submit

    return _submit(*args, **kwargs)
