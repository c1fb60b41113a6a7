"""biodiscover: encoders layer (see DESIGN.md)."""
