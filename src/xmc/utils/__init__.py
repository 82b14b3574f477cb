"""Layer-0 helpers shared by every other layer."""
