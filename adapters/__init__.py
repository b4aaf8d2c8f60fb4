"""Framework adapters (``fleetforge.adapters.langgraph``, ``.autogen``, ``.crewai``).

Each adapter imports its framework lazily; importing this package imports no framework.
"""
