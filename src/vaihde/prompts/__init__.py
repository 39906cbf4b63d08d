"""Spoken prompts: menu and announcement texts synthesized with espeak-ng and sox into files that
Asterisk plays, cached by content, with recorded sounds taking precedence (`library`, `say`,
`synth`).
"""

from vaihde.prompts.library import PromptLibrary

__all__ = ["PromptLibrary"]
