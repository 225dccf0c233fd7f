"""`python -m nexor_mcp` does exactly what the `nexor-mcp` console script does."""

from nexor_mcp.cli import main

raise SystemExit(main())
