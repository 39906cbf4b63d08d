"""One regular expression per kind of identifier: the shape a value must have before it may reach
Asterisk, the database, a URL, a log line or an SMTP header. Every check of that kind uses these.

Each is anchored (`^…$`), so `.match()` and `.fullmatch()` agree.
"""

import re

# Identifiers of employees, teams, menus, announcements: they appear in URLs, logs and reasons.
ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
ID_HELP = "lower-case letters, digits, - or _ (at most 40, starting with a letter or digit)"

# An employee's extension: keyed in the entry menu, where 0 is the operator (so never a leading
# 0) and vaihde waits for at most 8 keys.
EXTENSION = re.compile(r"^[1-9][0-9]{1,7}$")
EXTENSION_HELP = "must be 2 to 8 digits, not starting with 0 (0 is the operator)"

# A phone number the admin configures (company numbers, direct numbers, mobiles, SMS, outside
# targets): digits with an optional leading +; an E.164 number with any international prefix
# fits in 20 digits.
PHONE = re.compile(r"^\+?[0-9]{3,20}$")
PHONE_HELP = "must be a phone number: digits with an optional leading +, like +358401234567"

# A phone number vaihde is given from outside (a caller's number on a message, a number an
# operator transfers to): more room, because trunks prepend their own prefixes.
NUMBER = re.compile(r"^\+?[0-9]{3,32}$")

# Digits the dialplan hands over (the dialled number, where a call was forwarded from).
DIALPLAN_DIGITS = re.compile(r"^[0-9]{1,32}$")

# An e-mail address vaihde sends to or from: it goes into SMTP envelopes and headers, so nothing
# that ends or splits an address (< > , ; : " ( ) [ ] \ whitespace), a local part of at most 64
# characters (RFC 5321) and an ASCII domain (an internationalised one is written as xn--…).
EMAIL = re.compile(r"^[^@\s<>,;:\"()\[\]\\]{1,64}@[A-Za-z0-9.\-]{1,189}\.[A-Za-z]{2,63}$")
EMAIL_MAX = 254
EMAIL_HELP = "is not an e-mail address like anna@example.fi"

# An Asterisk queue name (queues.conf section): no spaces, commas or dialplan characters.
QUEUE = re.compile(r"^[A-Za-z0-9_\-]{1,80}$")
QUEUE_HELP = "must be an Asterisk queue name (letters, digits, - and _)"

# An Asterisk music-on-hold class (musiconhold.conf section), set as CHANNEL(musicclass).
MUSIC_CLASS = re.compile(r"^[A-Za-z0-9_\-]{1,80}$")
MUSIC_CLASS_HELP = (
    "must be an Asterisk music-on-hold class (a musiconhold.conf section: letters, digits, - and _)"
)

# Dial strings reach Dial() as they are, so only plain device names are allowed: no '&' (extra
# legs), ',' (Dial options), '$' or quotes (expressions).
DEVICE = re.compile(r"^(PJSIP|SIP|IAX2|DAHDI|Local)/[A-Za-z0-9_.+@\-/]{1,80}$")
DEVICE_HELP = (
    "must be a device like PJSIP/anna or Local/anna@context (letters, digits and . _ - + @ / only)"
)

# Sound names as Playback() takes them: no extension, no '..', nothing the shell or dialplan reads.
SOUND = re.compile(r"^[A-Za-z0-9_\-/]{1,120}$")
SOUND_HELP = (
    "must be a sound name like custom/welcome (letters, digits, - _ /; no extension): "
    "Asterisk picks the recording in the caller's language"
)

# A language someone speaks: an ISO 639-1 code (what the company file and the directory hold).
LANGUAGE = re.compile(r"^[a-z]{2}$")
LANGUAGE_HELP = "must be a two-letter language code like fi, sv or en"

# A user of the API and the console ("caller" stands for the caller where a user is expected).
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@\-]{0,63}$")

# vaihde's own id of a call, as clients send it back (messages and callbacks).
CALL_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
CALL_ID_MAX = 64
# Asterisk's Uniqueid of a channel: [systemname-]epoch.sequence.
UNIQUEID = re.compile(r"^[A-Za-z0-9_-]{0,40}[0-9]+\.[0-9]+$")

# A host name or address in settings (no scheme, no path).
HOST = re.compile(r"^[A-Za-z0-9.\-:]{1,253}$")
# The secret in FastAGI URLs (agi://host:port/SECRET): URL-safe, long enough not to be guessed.
AGI_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
# An Asterisk's name is its `systemname` (asterisk.conf), which begins every Uniqueid it makes:
# call ids (vaihde.console.actions.CALL_ID) allow letters, digits, - and _ there.
SYSTEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
# The name of an environment variable (a secret given as `secret_env:`).
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
