"""What people and assistants talk to: the MCP tools, the command line, and the operations both share."""
