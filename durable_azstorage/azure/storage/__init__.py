"""Storage plumbing under everything above: the one place clients are built,
retries, request metrics, proxies, naming rules and payload blobs."""
