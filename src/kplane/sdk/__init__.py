"""What a provider author imports to serve an API exported from kplane."""
