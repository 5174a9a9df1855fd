"""`python -m signage` runs the same command line as the `signage` script."""

from signage.cli import main

main()
