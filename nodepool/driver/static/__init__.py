"""Static driver: pre-existing hosts registered as nodes."""
