"""Shapes that admin-written values must have before they may reach Asterisk or the database."""

import re

# Dial strings reach Dial() as they are, so only plain device names are allowed: no '&' (extra
# legs), ',' (Dial options), '$' or quotes (expressions).
DEVICE = re.compile(r"^(PJSIP|SIP|IAX2|DAHDI|Local)/[A-Za-z0-9_.+@\-/]{1,80}$")
# Sound names as Playback() takes them: no extension, no '..', nothing the shell or dialplan reads.
SOUND = re.compile(r"^[A-Za-z0-9_\-/]{1,120}$")
# Identifiers of employees, teams, menus: they appear in URLs, logs and reasons.
ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
