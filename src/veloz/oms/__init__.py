"""Order management: the book of orders, idempotent client order ids, applying events."""
