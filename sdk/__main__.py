"""``python -m fleetforge`` runs the CLI."""

from fleetforge.cli import main

main()
