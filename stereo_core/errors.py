"""The one exception type users see for bad input."""


class StereoInputError(ValueError):
    """Bad input, with a message that names the input and says how to fix it."""
