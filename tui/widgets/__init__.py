"""Widgets of the review app, one per module; each draws data it is given and holds no domain logic."""
