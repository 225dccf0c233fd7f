"""The entry point of the Claude Desktop bundle (`server/main.py` in nexor-mcp.mcpb).

Claude Desktop runs it with the user's Python (manifest.json, server.mcp_config): it puts the
packages bundled in `server/lib` first on the import path and starts nexor-mcp over stdio, exactly
as the `nexor-mcp` command would. The settings arrive as environment variables from the bundle's
user_config (the key from the OS keychain).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from nexor_mcp.cli import main  # after the path above

raise SystemExit(main(sys.argv[1:]))
