"""I/O at the edge: each adapter implements a port and translates its library's errors."""
