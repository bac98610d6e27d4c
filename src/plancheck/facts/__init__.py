"""Facts: what the rules read, built from validated documents (rules/facts/<subject>.yaml has a mirror here)."""
