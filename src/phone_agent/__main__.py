"""``python -m phone_agent`` runs the CLI."""

from phone_agent.cli import main

main()
