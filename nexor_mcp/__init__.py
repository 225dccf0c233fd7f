"""nexor-mcp: an MCP server that lets AI agents read and safely update Nexor leads."""

__version__ = "0.1.0"
