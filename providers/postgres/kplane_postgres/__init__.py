"""A kplane provider that hands out real PostgreSQL databases as ``PostgresInstance`` objects."""
