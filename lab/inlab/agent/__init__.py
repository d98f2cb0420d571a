"""The fault agent beside each lab host, and the client that steers it. Standard library only."""
