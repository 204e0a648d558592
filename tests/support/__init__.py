"""Shared test helpers: a real registry on loopback, and fixture disks and images."""
