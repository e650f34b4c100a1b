"""``python -m indextts2``: the same as the ``indextts2`` command."""

from indextts2.cli import main

if __name__ == "__main__":
    main()
