"""Errors as a user reads them: one line, not a traceback storm."""


def one_line(exc: BaseException) -> str:
    """`TypeName: first line of the message`, for a one-line error that wraps `exc`."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
