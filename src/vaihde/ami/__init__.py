"""Asterisk Manager Interface: the AMI client and the call tracker built from its events."""

from vaihde.ami import client, tracker
from vaihde.ami.client import *  # noqa: F403 -- the package is the two modules' public names
from vaihde.ami.tracker import *  # noqa: F403

__all__ = [*client.__all__, *tracker.__all__]
