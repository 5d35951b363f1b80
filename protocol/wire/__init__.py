"""What travels: the typed round message, its encoding and the wire constants both sides use."""
