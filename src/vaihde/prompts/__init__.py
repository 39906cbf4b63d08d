"""Spoken prompts: menu and announcement texts synthesized with espeak-ng and sox into files that
Asterisk plays, cached by content, with recorded sounds taking precedence.
"""

from vaihde.prompts.library import PrefetchReport, PromptLibrary, says
from vaihde.prompts.say import clock, greeting_for, on_date, sanitize_name, speakable
from vaihde.prompts.synth import EspeakSynth, Synth, SynthError, clean_text

__all__ = [
    "EspeakSynth",
    "PrefetchReport",
    "PromptLibrary",
    "Synth",
    "SynthError",
    "clean_text",
    "clock",
    "greeting_for",
    "on_date",
    "sanitize_name",
    "says",
    "speakable",
]
