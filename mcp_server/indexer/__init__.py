"""The indexer: walk a repository, cut files into chunks, embed them, write one new generation."""
