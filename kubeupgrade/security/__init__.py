"""Who may make the agents run something as root: operator-signed campaigns."""
