"""``kairos profile``: measure a live engine's step times and fit a profile file."""
