"""The playground: `python app.py` starts the web UI; `python app.py --help` lists the commands."""
import sys

from playground.cli import main

if __name__ == "__main__":
    sys.exit(main())
