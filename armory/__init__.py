"""Tool packs: MCP servers composed into agents' tools, gated by capability grants."""
