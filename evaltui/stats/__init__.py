"""Agreement statistics as pure functions on arrays (filled in by the agreement work)."""
