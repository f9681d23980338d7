"""WebDAV's building blocks (RFC 4918): safe XML bodies, the If header, the property and lock
store. The handler that uses them is wasp/worker/modules/web_dav.py."""
