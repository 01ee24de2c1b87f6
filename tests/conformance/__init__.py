"""The exported backend conformance suite (``durable_azstorage.testing.conformance``), run on
both of this package's backends."""
