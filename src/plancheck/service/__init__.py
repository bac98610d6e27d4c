"""The HTTP service (`plancheck serve`): the CLI's checks over HTTP, for HR and payroll systems."""
