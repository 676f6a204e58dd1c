"""toolkit package."""
