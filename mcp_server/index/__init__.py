"""The index in PostgreSQL: `store` writes generations of files and chunks, `search` reads them."""
