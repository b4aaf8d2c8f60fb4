"""Demos shipped with FleetForge: ``fleetforge demo`` runs Hello Fleet (:mod:`.hello_fleet`)."""
