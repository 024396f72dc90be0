"""One module per command. Each defines its command function (``prep`` a Typer sub-app) and imports nothing from
``threedgp_cli.app``; ``threedgp_cli.app`` registers them (one line per command there), so there is no import cycle.
"""
