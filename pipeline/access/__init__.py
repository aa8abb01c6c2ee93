"""Access to the archived records: search, the holder's store, the read API.

- ``search``     one query function over two back ends (SQLite FTS5, PostgreSQL unaccent +
                 pg_trgm); the holder's records; one record (docs/search.md)
- ``index``      the search index: its objects per dialect, kept up to date on load
- ``holders``    holder ids (12-digit, 9-digit, tax codes) as the warehouse compares them
- ``accesslog``  who read which record or looked up a holder, and why (Decree 13/2023)
- ``search_cli`` ``digitize search``
- ``tokens``, ``api``, ``commands``  the read API for the one-stop system and its tokens
"""
