"""Code that runs on the host only: Docker and Compose, the lab's topology, the ``lab`` command.

These modules may use the Docker SDK, click and rich; nothing inside the containers imports them.
"""
