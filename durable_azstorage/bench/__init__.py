"""Micro-benchmarks runnable as modules (``python -m durable_azstorage.bench.replay``)."""
