"""The node-local agent: thin Celery tasks that run host phases through `kubeupgrade.host`.

One agent per host, consuming only its own queue (`kubeupgrade.node.<name>`), one task at a time.
Start it with `kubeupgrade agent --node NAME --broker URL [--host-root DIR] [--path DIR]`.
"""
