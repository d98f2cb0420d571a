"""Helpers shared by the test suites: fakes, loopback peers, a pcap builder, host-level faults."""
