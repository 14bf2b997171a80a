"""Console pages. Each view parses a form, calls one service from ``tenants.services`` /
``brokers.services`` (or reads through selectors and scoped querysets) and renders a template."""
