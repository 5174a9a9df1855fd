"""Run py-svg-hush on one SVG in a process of its own, under memory and CPU limits.

py-svg-hush is Rust: on hostile input it can allocate without bound while holding the GIL, or
abort the whole process (SIGABRT, which no `except` catches). So store/plans.py never calls it in
the server: it starts this file as a script (`python -I svgworker.py ...`, which imports nothing
of signage, so it starts in ~20 ms), writes the SVG to its stdin and reads the result from its
stdout. Whatever happens here ends this process only, and the server turns it into a refusal.

Arguments: the output limit in bytes, the address-space limit in bytes, the CPU limit in seconds.
Exit status: 0 with the sanitised SVG on stdout; EXIT_REFUSED when the sanitiser raised;
EXIT_TOO_LARGE when its output was above the limit; anything else (a signal) is a crash.
"""

from __future__ import annotations

import resource
import sys

EXIT_REFUSED = 3
EXIT_TOO_LARGE = 4


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)  # an unprivileged process may lower its hard limit, not raise it
    resource.setrlimit(kind, (value, value))


def main(argv: list[str]) -> int:
    """Sanitise stdin to stdout; the exit status says how it went."""
    max_output, max_memory, max_cpu = (int(a) for a in argv[1:4])
    # Limits first, before a byte of the upload is read.
    _limit(resource.RLIMIT_AS, max_memory)
    _limit(resource.RLIMIT_CPU, max_cpu)
    _limit(resource.RLIMIT_CORE, 0)  # an abort must not leave a core file of the upload behind
    data = sys.stdin.buffer.read()
    from py_svg_hush import filter_svg  # after the limits: its loading counts against them

    try:
        out = filter_svg(data)
    except BaseException as exc:  # a Rust panic surfaces as a BaseException subclass
        print(f"sanitiser refused: {type(exc).__name__}", file=sys.stderr)
        return EXIT_REFUSED
    if len(out) > max_output:
        return EXIT_TOO_LARGE
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
