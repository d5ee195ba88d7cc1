"""Version of cdnlogs."""

__version__ = "0.1.0"
