"""The FleetForge MCP server (built on the official MCP SDK's FastMCP) over ``FleetService``."""
