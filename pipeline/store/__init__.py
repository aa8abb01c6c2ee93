"""Store: the warehouse, the archive, record claims, fixity, database roles, history."""
