"""Recommendations: what shoppers look at in, products to show them out (the `recommendations` subgraph)."""
