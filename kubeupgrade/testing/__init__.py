"""Test doubles that ship with kubeupgrade, for unit tests of code above the executor seam."""
