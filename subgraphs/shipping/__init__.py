"""The shipping subgraph: zones, methods and rates, shipping quotes for checkout, shipments and tracking."""
