"""The CLI's commands, one module per area; mcp_server/frontends/cli.py builds the parser that
routes to them."""
