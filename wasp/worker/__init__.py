"""The worker process (IIS w3wp): a pool's applications, the request pipeline, WSGI/ASGI hosting.

Entry point: `python -m wasp.worker --control-fd N --worker-id K --pool NAME` (main.py).
"""
