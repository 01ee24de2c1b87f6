"""Backend conformance suite: one set of tests, run against every Backend implementation."""
