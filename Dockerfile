# nexor-mcp in hosted mode: MCP over stateless Streamable HTTP at :8000/mcp, GET /healthz.
#
#   docker build -t nexor-mcp .
#   docker run --rm -p 8000:8000 -e NEXOR_MCP_ALLOWED_HOSTS=mcp.example.com nexor-mcp
#
# Multi-tenant by default: each request brings its own Nexor key (X-API-Key or Authorization:
# Bearer). No key or token is baked in: for single-tenant mode pass NEXOR_API_KEY and
# NEXOR_MCP_ACCESS_TOKENS at run time (from a secret store), never as build arguments.
#
# The image runs the wheel: the first stage builds it from the same files `python -m build` uses
# (pyproject.toml, README.md, LICENSE, nexor_mcp/), the second installs that wheel and its
# dependencies into a virtual environment, and the last stage holds only that environment.

FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY nexor_mcp ./nexor_mcp
RUN python -m pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim AS install
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /dist /dist
RUN python -m venv /opt/nexor-mcp && /opt/nexor-mcp/bin/pip install /dist/nexor_mcp-*-py3-none-any.whl

FROM python:3.11-slim
# The MCP registry checks this label against server.json's name (tests/test_packaging.py keeps them equal).
LABEL io.modelcontextprotocol.server.name="io.github.nexor-mcp/nexor-mcp" \
      org.opencontainers.image.title="nexor-mcp" \
      org.opencontainers.image.description="MCP server for Nexor leads, hosted mode (Streamable HTTP)" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/nexor-mcp/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NEXOR_MCP_PORT=8000
RUN groupadd --system --gid 10001 nexor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin nexor
COPY --from=install /opt/nexor-mcp /opt/nexor-mcp
USER 10001:10001
EXPOSE 8000
# No curl in the slim image: the health check is Python's urllib, on the port the server uses.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('NEXOR_MCP_PORT', '8000') + '/healthz', timeout=3)"]
CMD ["nexor-mcp", "http", "--host", "0.0.0.0"]
