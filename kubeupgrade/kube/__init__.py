"""The only package that imports the `kubernetes` client: nodes, drain, discovery, verification.

Everything here speaks plain dicts (the API's JSON) and raises kubeupgrade's own errors; an
`ApiException` never leaves this package.
"""
