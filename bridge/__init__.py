"""bridge: call functions written in C, PHP, Ruby and Java as typed Python functions over Gearman."""

__version__ = "0.1.0"
