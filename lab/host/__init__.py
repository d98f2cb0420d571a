"""Code that runs on the host only: Docker and Compose, the lab's topology, the ``lab`` command.

These modules may use the Docker SDK, toxiproxy-python, click and rich; nothing inside the containers
imports them (tests/unit/test_boundary.py checks), and images/app/Dockerfile does not copy them.
"""
