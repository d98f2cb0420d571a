"""Grading submitted socket code (host side): the static check, the verdict rules, the report card."""
