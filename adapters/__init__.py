"""Everything that touches NATS, SQL, DuckDB, HTTP or the file system."""
