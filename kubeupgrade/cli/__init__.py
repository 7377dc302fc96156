"""The `kubeupgrade` command line: argument parsing, rendering, exit codes."""
