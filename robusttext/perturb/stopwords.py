"""The project's stop-word list: function words that are never substituted.

Articles, pronouns, prepositions, conjunctions, auxiliary verbs, clitics of the GLUE / Treebank
tokenisation, and negations (replacing "not" or "n't" changes a sentence's meaning, so they are
never part of a substitution set).
"""

from __future__ import annotations

_WORDS = """
a an the this that these those
i me my mine myself we us our ours ourselves you your yours yourself yourselves
he him his himself she her hers herself it its itself they them their theirs themselves
who whom whose which what
am is are was were be been being have has had having do does did doing
will would shall should can could may might must
's 're 've 'd 'll 'm n't not no nor never
and or but if then else so than as because while until
of at by for with about against between into through during before after above below
to from up down in out on off over under again further
there here when where why how
all any both each few more most other some such only own same
too very just also
s t d ll m o re ve y
"""

STOP_WORDS: frozenset[str] = frozenset(_WORDS.split())
