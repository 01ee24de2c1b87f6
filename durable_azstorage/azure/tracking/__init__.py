"""The durable record of instances: History and Instances tables (stores and row
formats), the episode log and outbox, the session cache of loaded histories, what an
episode implies re-derived from its history, history admin (rewind, stale repair) and
the task hub's resources."""
