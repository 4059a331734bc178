"""AI-Memory: caller memory and the knowledge base."""
