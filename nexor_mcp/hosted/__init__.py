"""Hosted mode's parts; `nexor_mcp.http` puts them together (the app, and `serve`).

- `settings`: what only hosted mode is configured with, and the start-up refusal.
- `auth`: who may call and with which tools, decided once per request (`Authenticator`).
- `gate`: the ASGI middleware in front of /mcp that applies it (`RequestGate`).
- `serving`: uvicorn's protocol with a read timeout, and uvicorn's options.
"""
