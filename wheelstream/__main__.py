"""``python -m wheelstream``: the same command as the ``wheelstream`` script."""

from wheelstream.cli import main

if __name__ == "__main__":
    main()
