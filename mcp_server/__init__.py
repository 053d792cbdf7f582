"""codebase-mcp: semantic code search for AI coding assistants, served over MCP."""

__version__ = "0.1.0"
