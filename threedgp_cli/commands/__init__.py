"""One module per command; importing this package registers them all on ``threedgp_cli.app.app``.

Add one import line per command module. A command is registered only when it works.
"""
from threedgp_cli.commands import prep, info  # noqa: F401,E402
from threedgp_cli.commands import train  # noqa: F401
from threedgp_cli.commands import eval, export  # noqa: F401
from threedgp_cli.commands import doctor  # noqa: F401
