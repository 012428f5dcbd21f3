"""bridge: call functions written in C, PHP, Ruby and Java as typed Python functions (Gearman)."""

__version__ = "0.1.0"
