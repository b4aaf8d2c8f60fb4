"""The fleet engine: event store, projections, scheduler, leases, receipts, artifacts.

Nothing here yet: the event store and ``FleetService`` arrive with their own issues.
"""
