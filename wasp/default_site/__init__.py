"""The embedded Default Web Site: a static welcome page (www/) and a small WSGI demo (demo.py)."""
