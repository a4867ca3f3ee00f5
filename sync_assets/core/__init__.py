"""Domain-free building blocks shared by every synced source."""
