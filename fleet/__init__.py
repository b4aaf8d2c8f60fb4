"""The fleet engine.

- :mod:`~fleetforge.fleet.store` — the event store on SQLite or PostgreSQL (``open_store``);
- :mod:`~fleetforge.fleet.projections` — views updated with the events, rebuilt by replay;
- :mod:`~fleetforge.fleet.replay` — rebuild and ``verify``;
- :mod:`~fleetforge.fleet.artifacts` — the content-addressed blob store;
- :mod:`~fleetforge.fleet.transfer` — export and import of the event stream;
- :mod:`~fleetforge.fleet.settings` — where data lives (store URL, artifact root).

The scheduler, leases, receipts and ``FleetService`` come with the FleetService work.
"""
