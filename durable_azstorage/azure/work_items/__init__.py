"""Orchestration and activity work items: locks, the checkpoint protocol, the
receive loops of the owned partitions and the filter for the messages of an episode."""
