"""gRPC sidecar: serves the portable Durable Task SDKs (TaskHubSidecarService) from any Backend."""
