"""Nightly batch checks over payroll feeds."""
