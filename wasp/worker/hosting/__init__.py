"""WSGI (threads) and ASGI (event loop) hosting of a pool's applications."""
