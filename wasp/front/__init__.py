"""The front process, wasp's HTTP.sys: client connections, routing, pool queues, logs (docs/front.md)."""
