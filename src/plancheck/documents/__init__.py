"""Input documents: validated models of what users give plancheck (plans, limits, elections, requests, feeds)."""
