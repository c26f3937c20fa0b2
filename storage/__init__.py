"""Shared infrastructure: database connections, the writer and read pool, the durable outbox queue."""
