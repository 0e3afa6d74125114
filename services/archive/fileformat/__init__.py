"""The archive's files: their names, lines, manifests, filters and reading back."""
