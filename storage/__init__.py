"""biodiscover: storage layer (see DESIGN.md)."""
