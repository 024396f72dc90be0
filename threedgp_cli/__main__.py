"""``python -m threedgp_cli`` is the same as ``3dgp``."""
from threedgp_cli.app import main

if __name__ == "__main__":
    main()
