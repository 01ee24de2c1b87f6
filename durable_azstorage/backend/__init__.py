"""Storage seam (Backend protocol) and the in-memory backend."""
