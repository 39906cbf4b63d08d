"""vaihde: a company switchboard on Asterisk."""

__version__ = "0.1.0"
