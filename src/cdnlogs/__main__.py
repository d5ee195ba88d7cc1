"""`python -m cdnlogs` runs the command-line interface."""

from cdnlogs.cli import main

if __name__ == "__main__":
    main()
