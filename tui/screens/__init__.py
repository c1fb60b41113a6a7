"""Screens of the review app, one per module (queue, proposal detail, taxonomy, help, dialogs)."""
