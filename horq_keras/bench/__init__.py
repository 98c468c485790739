"""On-device benchmarking of converted models."""
