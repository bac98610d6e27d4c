"""Input documents: validated models of what users give plancheck."""
