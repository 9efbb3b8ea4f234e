"""`python -m telephony`: the operator's command line (see telephony/cli)."""

from telephony.cli import run

if __name__ == "__main__":
    run()
