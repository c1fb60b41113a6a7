"""biodiscover: workflows layer (see DESIGN.md)."""
