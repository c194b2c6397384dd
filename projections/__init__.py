"""What we show: read models rebuilt from the event log, each with its tracking position."""
