"""Tests of kplane.server."""
