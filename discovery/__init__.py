"""biodiscover: discovery layer (see DESIGN.md)."""
