"""biodiscover: tui layer (see DESIGN.md)."""
