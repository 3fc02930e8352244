"""One exception type for every problem a user can fix (bad data, names, shapes, files)."""


class StcastError(ValueError):
    """A problem with the user's input: the message names it and, where possible, the fix."""


def did_you_mean(name, known) -> str:
    """The one did-you-mean of every unknown name: `; did you mean a or b?`, else `; known: ...` (all of them)."""
    import difflib

    names = [str(k) for k in known]
    folded = {n.lower().replace("_", "-"): n for n in names}  # METR-LA, st_link: the name in another case or spelling
    exact = folded.get(str(name).lower().replace("_", "-"))
    close = [exact] if exact else difflib.get_close_matches(str(name), names, n=2)
    return f"; did you mean {' or '.join(close)}?" if close else f"; known: {', '.join(sorted(map(str, known)))}"
