"""The model catalog: one JSON file per family (installed with the package as package data)."""
