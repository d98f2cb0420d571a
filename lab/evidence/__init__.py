"""Packet evidence: pcap files read back and each TCP connection's story told. Standard library only."""
