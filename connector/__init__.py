"""ead-connector: electronic advance data between postal operators and Customs."""

__version__ = "0.1.0"
