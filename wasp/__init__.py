"""wasp: a web application server for Python on Linux, built on the architecture of IIS."""

__version__ = "0.1.0"
