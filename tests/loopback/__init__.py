"""Test package (so same-named test modules in unit/ and loopback/ do not collide)."""
