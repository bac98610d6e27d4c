"""plancheck: 401(k) contribution, withdrawal and plan-document compliance checks."""

__version__ = "0.1.0"
