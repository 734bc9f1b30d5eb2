"""Adapters that plug Kairos policies into third-party engines (optional extras)."""
