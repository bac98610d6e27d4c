"""Facts: what the rules read, built from validated documents."""
