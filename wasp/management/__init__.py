"""The management site (IIS Manager in a browser): docs/management.md."""
