"""What is true: aggregates, events, value objects and the rules they enforce.

Nothing in this package does I/O, reads a clock or draws randomness; record time,
ids and key material come in from the caller.
"""
