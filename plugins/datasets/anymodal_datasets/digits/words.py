"""Number words, caption templates and espeak-ng voices of the ``digits`` data set."""

from __future__ import annotations

__all__ = ["CAPTIONS", "NUMBER_WORDS", "VOICES", "VOICE_VARIANTS", "caption"]

# The digits 0-9 as words, as espeak-ng reads them aloud and as captions write them.
NUMBER_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "de": ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"),
    "fr": ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"),
    "es": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"),
}

# espeak-ng voices per language (`espeak-ng --voices`): regional accents where there are
# several, so that the audio of one language is not a single speaker.
VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-029"),
    "de": ("de",),
    "fr": ("fr-fr", "fr-be", "fr-ch"),
    "es": ("es", "es-419"),
}
# Voice variants (`espeak-ng --voices=variant`): male and female timbres.
VOICE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "f4", "f5")

# Caption templates; {w} is the number word, {W} the word capitalised (German nouns).
CAPTIONS: dict[str, tuple[str, ...]] = {
    "en": ("a handwritten {w}", "the digit {w}", "a picture of the number {w}",
           "{w}, written by hand"),
    "de": ("die Ziffer {w}", "eine handgeschriebene {W}", "die Zahl {w}",
           "ein Bild der Ziffer {w}"),
    "fr": ("le chiffre {w}", "un {w} écrit à la main", "le nombre {w}",
           "une image du chiffre {w}"),
    "es": ("el número {w}", "un {w} escrito a mano", "la cifra {w}",
           "una imagen del número {w}"),
}


def caption(language: str, template: int, label: int) -> str:
    """The caption ``template`` of ``language`` for the digit ``label``.

    Args:
        language: a key of :data:`CAPTIONS`.
        template: index into that language's templates (taken modulo their number).
        label: the digit, 0-9.
    """
    templates = CAPTIONS[language]
    word = NUMBER_WORDS[language][label]
    return templates[template % len(templates)].format(w=word, W=word.capitalize())
